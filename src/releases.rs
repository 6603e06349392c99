//! The release table: what meshplan knows about each Istio minor and each MetalLB minor, with
//! the pages each row was read from. The rows are one data file, `src/releases.toml` (compiled
//! in); this module loads it. The version rules (`validate/version.rs`) and the resolved
//! defaults (`resolve/`) read it; nothing else keeps these facts.
//!
//! Checked on [`CHECKED`]. A date that was only "expected" then (a release still supported) is
//! not in the table: the end-of-life rule fires only on dates Istio has announced.

use std::fmt;
use std::sync::LazyLock;

use serde::Deserialize;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
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

/// One Istio minor release (an `[[istio]]` row of `src/releases.toml`).
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
    /// ignores some kinds (IST0176); before 1.30 the only requirement was that the CRDs serve
    /// `v1` (Gateway API 1.0).
    pub gateway_api_minimum: Version,
    /// Ambient multicluster (multi-primary, multi-network), where it exists.
    pub ambient_multicluster: Option<Maturity>,
    /// Dual-stack IPv4/IPv6 clusters (`core.dual_stack`).
    pub dual_stack: Maturity,
    /// Single-stack IPv6 clusters (`core.ipv6`).
    pub ipv6: Maturity,
    /// Where the row's facts were read.
    pub sources: Vec<String>,
}

/// One MetalLB minor release (a `[[metallb]]` row).
#[derive(Debug)]
pub struct MetallbRelease {
    /// `(0, 15)`.
    pub minor: (u64, u64),
    /// Its newest patch release: the chart version a plan naming only the minor installs.
    pub newest: Version,
    /// Where the row's facts were read.
    pub sources: Vec<String>,
}

/// The table's text.
const TABLE: &str = include_str!("releases.toml");

/// `src/releases.toml` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    checked: String,
    istio: Vec<RawIstio>,
    metallb: Vec<RawMetallb>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIstio {
    minor: String,
    released: String,
    end_of_life: Option<String>,
    kubernetes: [String; 2],
    gateway_api: String,
    gateway_api_minimum: String,
    ambient_multicluster: Option<Maturity>,
    dual_stack: Maturity,
    ipv6: Maturity,
    sources: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetallb {
    minor: String,
    newest: String,
    sources: Vec<String>,
}

/// The loaded table.
struct Table {
    istio: Vec<IstioRelease>,
    metallb: Vec<MetallbRelease>,
}

fn day(text: &str) -> Result<Day, String> {
    Day::parse(text).ok_or_else(|| format!("`{text}` is not YYYY-MM-DD"))
}

fn minor(text: &str) -> Result<(u64, u64), String> {
    Version::parse(text)
        .filter(|v| v.patch.is_none())
        .map(|v| (v.major, v.minor))
        .ok_or_else(|| format!("`{text}` is not MAJOR.MINOR"))
}

fn release(text: &str) -> Result<Version, String> {
    Version::parse(text)
        .filter(|v| v.patch.is_some())
        .ok_or_else(|| format!("`{text}` is not MAJOR.MINOR.PATCH"))
}

fn istio_row(r: RawIstio) -> Result<IstioRelease, String> {
    let (oldest, newest) = (minor(&r.kubernetes[0])?, minor(&r.kubernetes[1])?);
    if oldest.0 != 1 || newest.0 != 1 {
        return Err(format!("{}: Kubernetes is 1.x", r.minor));
    }
    Ok(IstioRelease {
        minor: minor(&r.minor)?,
        released: day(&r.released)?,
        end_of_life: r.end_of_life.as_deref().map(day).transpose()?,
        kubernetes: (oldest.1, newest.1),
        gateway_api: release(&r.gateway_api)?,
        gateway_api_minimum: release(&r.gateway_api_minimum)?,
        ambient_multicluster: r.ambient_multicluster,
        dual_stack: r.dual_stack,
        ipv6: r.ipv6,
        sources: r.sources,
    })
}

fn load(text: &str) -> Result<Table, String> {
    let raw: RawTable = toml::from_str(text).map_err(|e| e.to_string())?;
    let istio = raw
        .istio
        .into_iter()
        .map(istio_row)
        .collect::<Result<Vec<_>, String>>()?;
    let metallb = raw
        .metallb
        .into_iter()
        .map(|r| {
            Ok(MetallbRelease {
                minor: minor(&r.minor)?,
                newest: release(&r.newest)?,
                sources: r.sources,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if istio.is_empty() {
        return Err("no [[istio]] row".to_owned());
    }
    if day(&raw.checked)? != CHECKED {
        return Err(format!(
            "`checked` is not {CHECKED}, the date src/releases.rs dates findings with"
        ));
    }
    Ok(Table { istio, metallb })
}

/// The table, loaded once. `src/releases.toml` is compiled in and the unit tests load it, so
/// a table that does not load never leaves the repository.
static LOADED: LazyLock<Table> = LazyLock::new(|| {
    load(TABLE).unwrap_or_else(|e| panic!("src/releases.toml (compiled in) does not load: {e}"))
});

/// Every Istio minor meshplan emits for, oldest first.
pub fn istio_releases() -> &'static [IstioRelease] {
    &LOADED.istio
}

/// MetalLB minors with its CRD configuration (0.13 on), oldest first; a MetalLB Helm chart's
/// version is the release's.
pub fn metallb_releases() -> &'static [MetallbRelease] {
    &LOADED.metallb
}

/// The row of an Istio version's minor, if meshplan knows it.
pub fn istio(version: &Version) -> Option<&'static IstioRelease> {
    istio_releases()
        .iter()
        .find(|r| r.minor == (version.major, version.minor))
}

/// The oldest Istio minor meshplan emits for.
pub fn oldest_istio() -> &'static IstioRelease {
    &istio_releases()[0]
}

/// The newest Istio minor meshplan knows.
pub fn newest_istio() -> &'static IstioRelease {
    &istio_releases()[istio_releases().len() - 1]
}

/// The minors still supported on `today`, oldest first (for a help text).
pub fn supported_istio(today: Day) -> Vec<&'static IstioRelease> {
    istio_releases()
        .iter()
        .filter(|r| r.released <= today && r.end_of_life.is_none_or(|eol| eol > today))
        .collect()
}

/// The first MetalLB release whose Service annotations use the `metallb.io/` prefix
/// (`metallb.universe.tf/` before): MetalLB 0.14.9's release notes.
pub const METALLB_IO_ANNOTATIONS: (u64, u64, u64) = (0, 14, 9);

/// The release a MetalLB version installs: the version itself when it names a patch, the
/// minor's newest patch when meshplan knows the minor, else `None` (install it unpinned).
pub fn metallb_release(version: &Version) -> Option<Version> {
    if version.patch.is_some() {
        return Some(version.clone());
    }
    metallb_releases()
        .iter()
        .find(|r| r.minor == (version.major, version.minor))
        .map(|r| r.newest.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_rows_are_consecutive_minors_with_sane_facts() {
        for pair in istio_releases().windows(2) {
            assert_eq!(pair[1].minor, (pair[0].minor.0, pair[0].minor.1 + 1));
            assert!(pair[0].released < pair[1].released);
            assert!(pair[0].kubernetes.0 <= pair[1].kubernetes.0);
            assert!(pair[0].gateway_api <= pair[1].gateway_api);
        }
        for row in istio_releases() {
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
        assert_eq!(row(28).kubernetes, (29, 35));
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
        for row in metallb_releases() {
            assert_eq!((row.newest.major, row.newest.minor), row.minor);
            assert!(!row.sources.is_empty());
        }
    }

    #[test]
    fn a_broken_table_says_what_is_wrong() {
        let good = r#"checked = "2026-12-06"
metallb = []
[[istio]]
minor = "1.30"
released = "2026-05-18"
kubernetes = ["1.32", "1.36"]
gateway_api = "1.5.1"
gateway_api_minimum = "1.5.0"
dual_stack = "beta"
ipv6 = "alpha"
sources = []
"#;
        assert!(load(good).is_ok());
        let error = |from: &str, to: &str| load(&good.replace(from, to)).err().unwrap_or_default();
        assert!(error(r#""1.5.0""#, r#""1.5""#).contains("`1.5` is not MAJOR.MINOR.PATCH"));
        assert!(error("2026-05-18", "2026-5-18").contains("not YYYY-MM-DD"));
        assert!(error(r#""beta""#, r#""gamma""#).contains("gamma"));
        assert!(error("ipv6", "ipv7").contains("ipv7"));
        assert!(error(r#"["1.32""#, r#"["2.32""#).contains("Kubernetes is 1.x"));
        assert!(error("2026-12-06", "2026-12-07").contains("`checked` is not 2026-12-06"));
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
