//! The fleet file of a guard run: the operator's file, edited (comments and layout kept)
//! so the maintenance starts now, covers only the hosts with provider events due, and
//! carries each event as a `[[notice]]` (its window start a deadline). Stored with the run
//! like any fleet file, so `resume`, `status`, the status page and notify read it as they
//! read any run's.

use jiff::Timestamp;
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, value};

/// A provider event the guard acts on: one host, one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// `source:id` ([`rollcall_providers::ProviderEvent::key`]).
    pub key: String,
    pub host: String,
    pub source: String,
    pub code: String,
    pub not_before: i64,
    pub not_after: Option<i64>,
}

fn rfc3339(t: i64) -> String {
    Timestamp::from_second(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// The operator's fleet text with the maintenance starting at `now`, scoped to the hosts
/// of `due`, and each event as a `[[notice]]` with its source. Errors: the text is not TOML,
/// or `maintenance`/`notice` are not tables where the file has them.
pub fn guard_text(text: &str, due: &[Due], now: i64) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    let m = doc
        .entry("maintenance")
        .or_insert(Item::Table(Table::new()))
        .as_table_mut()
        .ok_or("`maintenance` is not a table")?;
    m.insert("start", value(rfc3339(now)));
    if !m.contains_key("name") {
        m.insert("name", value("Reboots ahead of provider maintenance"));
    }
    let mut ids = Array::new();
    let mut seen = std::collections::BTreeSet::new();
    for d in due.iter().filter(|d| seen.insert(d.host.as_str())) {
        ids.push(d.host.as_str());
    }
    let mut scope = InlineTable::new();
    scope.insert("ids", ids.into());
    m.insert("hosts", value(scope));
    let notices = doc
        .entry("notice")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or("`notice` is not an array of tables")?;
    for d in due {
        notices.push(notice_table(d));
    }
    Ok(doc.to_string())
}

fn notice_table(d: &Due) -> Table {
    let mut t = Table::new();
    t.insert("id", value(d.key.as_str()));
    t.insert("code", value(d.code.as_str()));
    t.insert("source", value(d.source.as_str()));
    let mut hosts = Array::new();
    hosts.push(d.host.as_str());
    t.insert("hosts", value(hosts));
    t.insert("not_before", value(rfc3339(d.not_before)));
    if let Some(a) = d.not_after {
        t.insert("not_after", value(rfc3339(a)));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLEET: &str = r#"
[fleet]
name = "t"   # kept

[[host]]
id = "a"
region = "r"
[[host]]
id = "b"
region = "r"

[maintenance]
notice_lead = "1h"
hosts = { tags = ["x"] }
"#;

    fn due(host: &str, key: &str) -> Due {
        Due {
            key: key.into(),
            host: host.into(),
            source: "azure".into(),
            code: "Reboot".into(),
            not_before: 1_800_000_000,
            not_after: None,
        }
    }

    #[test]
    fn the_guard_text_scopes_starts_and_carries_the_notices() {
        let t = guard_text(
            FLEET,
            &[due("b", "azure:1"), due("b", "azure:2")],
            1_700_000_000,
        )
        .unwrap();
        let v: DocumentMut = t.parse().unwrap();
        let m = &v["maintenance"];
        assert_eq!(m["start"].as_str(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(m["hosts"]["ids"].as_array().unwrap().len(), 1);
        assert!(
            m["hosts"].get("tags").is_none(),
            "the file's scope is replaced"
        );
        let n = v["notice"].as_array_of_tables().unwrap();
        assert_eq!(n.len(), 2);
        let n: Vec<&Table> = n.iter().collect();
        assert_eq!(n[1]["id"].as_str(), Some("azure:2"));
        assert_eq!(n[0]["source"].as_str(), Some("azure"));
        assert_eq!(n[0]["not_before"].as_str(), Some("2027-01-15T08:00:00Z"));
        assert!(t.contains("# kept"), "comments stay");
    }

    #[test]
    fn a_file_that_is_not_toml_is_an_error() {
        assert!(guard_text("[maintenance", &[], 0).is_err());
        assert!(guard_text("maintenance = 3", &[], 0).is_err());
    }
}
