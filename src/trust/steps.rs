//! Each phase's files and steps as data (filled in below).
