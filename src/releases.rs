//! The release table: what meshplan knows about each Istio minor and each MetalLB minor, with
//! the page each row was read from. The version rules (`validate/version.rs`) and the resolved
//! defaults (`resolve/`) read it; nothing else keeps these facts.
//!
//! Checked on [`CHECKED`]. A date that was only "expected" then (a release still supported) is
//! not in the table: the end-of-life rule fires only on dates Istio has announced.

use std::fmt;

use crate::model::Version;

/// A calendar date, `YYYY-MM-DD`. Ordered by year, month, day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day {
    /// Year.
    pub year: u16,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of the month, 1..=31.
    pub day: u8,
}

impl Day {
    /// A date (not checked: the table's dates are literals).
    pub const fn new(year: u16, month: u8, day: u8) -> Self {
        Day { year, month, day }
    }

    /// Parses `YYYY-MM-DD`; `None` for anything else or an impossible month or day.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('-');
        let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
        let digits = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
        if parts.next().is_some() || !digits(year, 4) || !digits(month, 2) || !digits(day, 2) {
            return None;
        }
        let date = Day::new(year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
        ((1..=12).contains(&date.month) && (1..=31).contains(&date.day)).then_some(date)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// The day the table was last checked against its sources: the reference date of `check`
/// when no other date is given (tests, and every library caller), so findings do not change
/// as time passes.
pub const CHECKED: Day = Day::new(2026, 12, 6);

/// How mature an Istio feature is in a release (istio/enhancements `features.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Maturity {
    /// Before alpha; may be removed.
    Experimental,
    /// Works end to end, not for production.
    Alpha,
    /// Usable in production.
    Beta,
    /// Production hardened.
    Stable,
}

impl fmt::Display for Maturity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Maturity::Experimental => "experimental",
            Maturity::Alpha => "alpha",
            Maturity::Beta => "beta",
            Maturity::Stable => "stable",
        })
    }
}

/// One Istio minor release.
#[derive(Debug)]
pub struct IstioRelease {
    /// `(1, 24)`.
    pub minor: (u64, u64),
    /// The `.0` release's date.
    pub released: Day,
    /// End of life, once Istio has announced it; `None` while supported.
    pub end_of_life: Option<Day>,
    /// The oldest and the newest Kubernetes minor it supports (`1.x`).
    pub kubernetes: (u64, u64),
    /// The Gateway API release it is built and documented with (`go.mod`): the CRDs an ambient
    /// mesh installs unless the plan says otherwise.
    pub gateway_api: Version,
    /// The oldest Gateway API release whose CRDs istiod processes in full: below it, istiod
    /// ignores some kinds (IST0176, `pkg/config/schema/gatewayapi/minimumversions.go`); before
    /// 1.30 the only requirement was that the CRDs serve `v1` (Gateway API 1.0).
    pub gateway_api_minimum: Version,
    /// Ambient multicluster (multi-primary, multi-network), where it exists.
    pub ambient_multicluster: Option<Maturity>,
    /// Dual-stack IPv4/IPv6 clusters (`core.dual_stack`).
    pub dual_stack: Maturity,
    /// Single-stack IPv6 clusters (`core.ipv6`).
    pub ipv6: Maturity,
    /// Where the row's facts were read.
    pub sources: &'static [&'static str],
}

/// The page and the data file it is rendered from (`releaseDate`, `eolDate`, `k8sVersions`).
const SUPPORTED_RELEASES: &str = "https://istio.io/latest/docs/releases/supported-releases/";
const FEATURES: &str = "https://github.com/istio/enhancements/blob/master/features.yaml";

const fn gateway_api(major: u64, minor: u64, patch: u64) -> Version {
    Version::new(major, minor, Some(patch))
}

/// Every Istio minor meshplan emits for, oldest first. Release and end-of-life dates and the
/// Kubernetes ranges are Istio's supported-releases table (`data/compatibility/supportStatus.yml`
/// of istio/istio.io); the Gateway API releases are each tag's `go.mod`; maturities are
/// istio/enhancements `features.yaml` at the time of each release and the release notes.
pub const ISTIO: &[IstioRelease] = &[
    IstioRelease {
        minor: (1, 20),
        released: Day::new(2023, 11, 14),
        end_of_life: Some(Day::new(2024, 6, 25)),
        kubernetes: (25, 29),
        gateway_api: gateway_api(1, 0, 0),
        gateway_api_minimum: gateway_api(1, 0, 0),
        ambient_multicluster: None,
        dual_stack: Maturity::Experimental,
        ipv6: Maturity::Alpha,
        sources: &[
            SUPPORTED_RELEASES,
            "https://github.com/istio/istio/blob/1.20.0/go.mod",
            FEATURES,
        ],
    },
    IstioRelease {
        minor: (1, 21),
        released: Day::new(2024, 3, 13),
        end_of_life: Some(Day::new(2024, 9, 27)),
        kubernetes: (26, 29),
        // go.mod pins a v1.0.1 pre-release commit; the CRDs are v1.0.0's.
        gateway_api: gateway_api(1, 0, 0),
        gateway_api_minimum: gateway_api(1, 0, 0),
        ambient_multicluster: None,
        dual_stack: Maturity::Experimental,
        ipv6: Maturity::Alpha,
        sources: &[
            SUPPORTED_RELEASES,
            "https://github.com/istio/istio/blob/1.21.0/go.mod",
            FEATURES,
        ],
    },
    IstioRelease {
        minor: (1, 22),
        released: Day::new(2024, 5, 13),
        end_of_life: Some(Day::new(2025, 1, 22)),
        kubernetes: (27, 30),
        gateway_api: gateway_api(1, 1, 0),
        gateway_api_minimum: gateway_api(1, 0, 0),
        ambient_multicluster: None,
        dual_stack: Maturity::Experimental,
        ipv6: Maturity::Alpha,
        sources: &[
            SUPPORTED_RELEASES,
            "https://github.com/istio/istio/blob/1.22.0/go.mod",
            FEATURES,
        ],
    },
    IstioRelease {
        minor: (1, 23),
        released: Day::new(2024, 8, 14),
        end_of_life: Some(Day::new(2025, 4, 16)),
        kubernetes: (27, 30),
        gateway_api: gateway_api(1, 1, 0),
        gateway_api_minimum: gateway_api(1, 0, 0),
        ambient_multicluster: None,
        // features.yaml: "Promote dual-stack to Alpha", 2024-07-24 (istio/enhancements#185).
        dual_stack: Maturity::Alpha,
        ipv6: Maturity::Alpha,
        sources: &[
            SUPPORTED_RELEASES,
            "https://github.com/istio/istio/blob/1.23.0/go.mod",
            "https://github.com/istio/enhancements/pull/185",
        ],
    },
    IstioRelease {
        minor: (1, 24),
        released: Day::new(2024, 11, 7),
        end_of_life: Some(Day::new(2025, 6, 24)),
        kubernetes: (28, 31),
        gateway_api: gateway_api(1, 2, 0),
        gateway_api_minimum: gateway_api(1, 0, 0),
        ambient_multicluster: None,
        dual_stack: Maturity::Alpha,
        ipv6: Maturity::Alpha,
        sources: &[
            SUPPORTED_RELEASES,
            "https://github.com/istio/istio/blob/1.24.0/go.mod",
            FEATURES,
        ],
    },
    IstioRelease {
        minor: (1, 25),
        released: Day::new(2025, 3, 3),
        end_of_life: Some(Day::new(2025, 9, 30)),
        kubernetes: (29, 32),
        gateway_api: gateway_api(1, 2, 1),
        gateway_api_minimum: gateway_api(1, 0, 0),
        ambient_multicluster: None,
        dual_stack: Maturity::Alpha,
        ipv6: Maturity::Alpha,
        sources: &[
            SUPPORTED_RELEASES,
            "https://github.com/istio/istio/blob/1.25.0/go.mod",
            FEATURES,
        ],
    },
    IstioRelease {
        minor: (1, 26),
        released: Day::new(2025, 5, 8),
        end_of_life: Some(Day::new(2025, 12, 22)),
        // The table; the 1.26.0 announcement said 1.29 to 1.32 ("expect 1.33 to work").
        kubernetes: (29, 33),
        // go.mod pins a v1.3.0 release candidate.
        gateway_api: gateway_api(1, 3, 0),
        gateway_api_minimum: gateway_api(1, 0, 0),
        ambient_multicluster: None,
        dual_stack: Maturity::Alpha,
        ipv6: Maturity::Alpha,
        sources: &[
            SUPPORTED_RELEASES,
            "https://github.com/istio/istio/blob/1.26.0/go.mod",
            FEATURES,
        ],
    },
    IstioRelease {
        minor: (1, 27),
        released: Day::new(2025, 8, 11),
        // supportStatus.yml: "eolDate: April 7, 2026".
        end_of_life: Some(Day::new(2026, 4, 7)),
        kubernetes: (29, 33),
        gateway_api: gateway_api(1, 3, 0),
        gateway_api_minimum: gateway_api(1, 0, 0),
        // "Ambient multicluster (alpha)", the 1.27 announcement.
        ambient_multicluster: Some(Maturity::Alpha),
        dual_stack: Maturity::Alpha,
        ipv6: Maturity::Alpha,
        sources: &[
            SUPPORTED_RELEASES,
            "https://istio.io/latest/news/releases/1.27.x/announcing-1.27/",
            "https://github.com/istio/istio/blob/1.27.0/go.mod",
            FEATURES,
        ],
    },
    IstioRelease {
        minor: (1, 28),
        released: Day::new(2025, 11, 5),
        // The last 1.28 release, 1.28.10, and its end-of-life notice.
        end_of_life: Some(Day::new(2026, 7, 1)),
        // supportStatus.yml: k8sVersions 1.30 to 1.34 (issue 23 said 1.29 to 1.35; the
        // table follows Istio's data file).
        kubernetes: (30, 34),
        gateway_api: gateway_api(1, 4, 0),
        gateway_api_minimum: gateway_api(1, 0, 0),
        ambient_multicluster: Some(Maturity::Alpha),
        // features.yaml: "Promote Dual-Stack to Beta", 2025-09-10 (istio/enhancements#196).
        dual_stack: Maturity::Beta,
        ipv6: Maturity::Alpha,
        sources: &[
            SUPPORTED_RELEASES,
            "https://istio.io/latest/news/support/announcing-1.28-eol-final/",
            "https://github.com/istio/istio/blob/1.28.0/go.mod",
            "https://github.com/istio/enhancements/pull/196",
        ],
    },
    IstioRelease {
        minor: (1, 29),
        released: Day::new(2026, 2, 16),
        // "1.29 reached end of life on 2026-10-15", the 1.29.9 announcement.
        end_of_life: Some(Day::new(2026, 10, 15)),
        kubernetes: (31, 35),
        gateway_api: gateway_api(1, 4, 0),
        gateway_api_minimum: gateway_api(1, 0, 0),
        // "Promoted multi-network multicluster support to Beta in ambient mode" (change notes);
        // beta for multi-primary, multi-network meshes only.
        ambient_multicluster: Some(Maturity::Beta),
        dual_stack: Maturity::Beta,
        ipv6: Maturity::Alpha,
        sources: &[
            SUPPORTED_RELEASES,
            "https://istio.io/latest/news/releases/1.29.x/announcing-1.29.9/",
            "https://istio.io/latest/news/releases/1.29.x/announcing-1.29/change-notes/",
            "https://github.com/istio/istio/blob/1.29.0/go.mod",
            FEATURES,
        ],
    },
    IstioRelease {
        minor: (1, 30),
        released: Day::new(2026, 5, 18),
        end_of_life: None,
        kubernetes: (32, 36),
        gateway_api: gateway_api(1, 5, 1),
        // Upgrade notes: "Gateway API CRDs must be upgraded to v1.5.x" (TLSRoute below 1.5.0
        // is not processed).
        gateway_api_minimum: gateway_api(1, 5, 0),
        ambient_multicluster: Some(Maturity::Beta),
        dual_stack: Maturity::Beta,
        ipv6: Maturity::Alpha,
        sources: &[
            SUPPORTED_RELEASES,
            "https://istio.io/latest/news/releases/1.30.x/announcing-1.30/upgrade-notes/",
            "https://github.com/istio/istio/blob/1.30.0/go.mod",
            "https://github.com/istio/istio/blob/release-1.30/pkg/config/schema/gatewayapi/minimumversions.go",
            FEATURES,
        ],
    },
    IstioRelease {
        minor: (1, 31),
        released: Day::new(2026, 8, 31),
        end_of_life: None,
        // The 1.31.0 announcement: "officially supported on Kubernetes versions 1.32 to 1.36".
        kubernetes: (32, 36),
        gateway_api: gateway_api(1, 6, 0),
        // TCPRoute below 1.6.0 is not processed.
        gateway_api_minimum: gateway_api(1, 6, 0),
        ambient_multicluster: Some(Maturity::Beta),
        dual_stack: Maturity::Beta,
        ipv6: Maturity::Alpha,
        sources: &[
            SUPPORTED_RELEASES,
            "https://istio.io/latest/news/releases/1.31.x/announcing-1.31/",
            "https://github.com/istio/istio/blob/release-1.31/go.mod",
            "https://github.com/istio/istio/blob/release-1.31/pkg/config/schema/gatewayapi/minimumversions.go",
            FEATURES,
        ],
    },
];

/// The row of an Istio version's minor, if meshplan knows it.
pub fn istio(version: &Version) -> Option<&'static IstioRelease> {
    ISTIO
        .iter()
        .find(|r| r.minor == (version.major, version.minor))
}

/// The oldest Istio minor meshplan emits for.
pub fn oldest_istio() -> &'static IstioRelease {
    &ISTIO[0]
}

/// The newest Istio minor meshplan knows.
pub fn newest_istio() -> &'static IstioRelease {
    &ISTIO[ISTIO.len() - 1]
}

/// The minors still supported on `today`, oldest first (for a help text).
pub fn supported_istio(today: Day) -> Vec<&'static IstioRelease> {
    ISTIO
        .iter()
        .filter(|r| r.released <= today && r.end_of_life.is_none_or(|eol| eol > today))
        .collect()
}

/// One MetalLB minor release.
#[derive(Debug)]
pub struct MetallbRelease {
    /// `(0, 15)`.
    pub minor: (u64, u64),
    /// Its newest patch release: the chart version a plan naming only the minor installs.
    pub newest: Version,
    /// Where the row's facts were read.
    pub sources: &'static [&'static str],
}

/// MetalLB minors with its CRD configuration (0.13 on), oldest first: the release tags of
/// github.com/metallb/metallb, whose Helm chart versions are the release versions (the newest
/// patches of 0.13 to 0.15 as https://endoflife.date/metallb lists them on 2026-05-09).
pub const METALLB: &[MetallbRelease] = &[
    MetallbRelease {
        minor: (0, 13),
        newest: Version::new(0, 13, Some(12)),
        sources: &["https://github.com/metallb/metallb/releases/tag/v0.13.12"],
    },
    MetallbRelease {
        minor: (0, 14),
        newest: Version::new(0, 14, Some(9)),
        sources: &["https://github.com/metallb/metallb/releases/tag/v0.14.9"],
    },
    MetallbRelease {
        minor: (0, 15),
        newest: Version::new(0, 15, Some(3)),
        sources: &["https://github.com/metallb/metallb/releases/tag/v0.15.3"],
    },
    MetallbRelease {
        minor: (0, 16),
        newest: Version::new(0, 16, Some(0)),
        sources: &["https://github.com/metallb/metallb/releases/tag/v0.16.0"],
    },
];

/// The first MetalLB release whose Service annotations use the `metallb.io/` prefix
/// (`metallb.universe.tf/` before): MetalLB 0.14.9's release notes.
pub const METALLB_IO_ANNOTATIONS: (u64, u64, u64) = (0, 14, 9);

/// The release a MetalLB version installs: the version itself when it names a patch, the
/// minor's newest patch when meshplan knows the minor, else `None` (install it unpinned).
pub fn metallb_release(version: &Version) -> Option<Version> {
    if version.patch.is_some() {
        return Some(version.clone());
    }
    METALLB
        .iter()
        .find(|r| r.minor == (version.major, version.minor))
        .map(|r| r.newest.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_rows_are_consecutive_minors_with_sane_facts() {
        for pair in ISTIO.windows(2) {
            assert_eq!(pair[1].minor, (pair[0].minor.0, pair[0].minor.1 + 1));
            assert!(pair[0].released < pair[1].released);
            assert!(pair[0].kubernetes.0 <= pair[1].kubernetes.0);
            assert!(pair[0].gateway_api <= pair[1].gateway_api);
        }
        for row in ISTIO {
            assert!(row.kubernetes.0 <= row.kubernetes.1, "{:?}", row.minor);
            assert!(
                row.gateway_api_minimum <= row.gateway_api,
                "{:?}",
                row.minor
            );
            assert!(row.end_of_life.is_none_or(|eol| eol > row.released));
            assert!(row.end_of_life.is_none_or(|eol| eol <= CHECKED));
            assert!(!row.sources.is_empty());
            assert!(row.sources.iter().all(|s| s.starts_with("https://")));
        }
        assert_eq!(oldest_istio().minor, (1, 20));
        assert_eq!(newest_istio().minor, (1, 31));
    }

    #[test]
    fn the_issue_facts_are_in_the_table() {
        let row = |minor| istio(&Version::new(1, minor, Some(0))).unwrap();
        assert_eq!(row(27).kubernetes, (29, 33));
        assert_eq!(row(28).kubernetes, (30, 34));
        assert_eq!(row(29).kubernetes, (31, 35));
        assert_eq!(row(30).kubernetes, (32, 36));
        assert_eq!(row(31).kubernetes, (32, 36));
        assert_eq!(row(29).end_of_life, Some(Day::new(2026, 10, 15)));
        assert_eq!(row(27).ambient_multicluster, Some(Maturity::Alpha));
        assert_eq!(row(29).ambient_multicluster, Some(Maturity::Beta));
        assert_eq!(row(28).dual_stack, Maturity::Beta);
        assert_eq!(row(27).dual_stack, Maturity::Alpha);
    }

    #[test]
    fn supported_minors_depend_on_the_day() {
        let minors =
            |day| -> Vec<(u64, u64)> { supported_istio(day).iter().map(|r| r.minor).collect() };
        assert_eq!(minors(CHECKED), vec![(1, 30), (1, 31)]);
        assert_eq!(
            minors(Day::new(2026, 10, 1)),
            vec![(1, 29), (1, 30), (1, 31)]
        );
    }

    #[test]
    fn metallb_minors_pin_their_newest_patch() {
        let v = |text| Version::parse(text).unwrap();
        assert_eq!(metallb_release(&v("0.15")), Some(v("0.15.3")));
        assert_eq!(metallb_release(&v("0.13.7")), Some(v("0.13.7")));
        assert_eq!(metallb_release(&v("0.99")), None);
        for row in METALLB {
            assert_eq!((row.newest.major, row.newest.minor), row.minor);
        }
    }

    #[test]
    fn days_parse_and_order() {
        assert_eq!(Day::parse("2026-10-15"), Some(Day::new(2026, 10, 15)));
        assert_eq!(Day::new(2026, 1, 5).to_string(), "2026-01-05");
        for bad in [
            "",
            "2026-1-05",
            "2026-13-01",
            "2026-10-32",
            "2026-10-15-1",
            "x026-10-15",
        ] {
            assert_eq!(Day::parse(bad), None, "{bad}");
        }
        assert!(Day::new(2026, 10, 15) < Day::new(2026, 10, 16));
    }
}
