//! The admin API's request bodies: their types, and how a body is parsed and checked
//! before anything is stored. No I/O: the handlers in `lib.rs` call these, and the fuzz
//! target `admin_bodies` (`fuzz/`) compiles this file on its own (with `cfg(fuzzing)`,
//! which leaves out the OpenAPI derive). Every bad body is a [`BadRequest`] naming the
//! field, never a panic.

use rollcall_core::Fleet;
use serde::Deserialize;

/// Longest notice or maintenance title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest notice or maintenance body, in characters.
pub const MAX_BODY: usize = 5000;

/// A body the API refuses with 400: what is wrong, and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    pub message: String,
    pub field: Option<String>,
}

impl BadRequest {
    fn new(message: impl Into<String>, field: Option<&str>) -> BadRequest {
        BadRequest {
            message: message.into(),
            field: field.map(str::to_string),
        }
    }
}

#[derive(Debug, Deserialize)]
#[cfg_attr(not(fuzzing), derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewNotice {
    pub title: String,
    #[serde(default)]
    pub body: String,
    /// A region of the run's fleet.
    pub region: Option<String>,
    /// Only this tenant sees the notice.
    pub tenant: Option<String>,
    /// RFC 3339; default: now on the run clock.
    pub at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(not(fuzzing), derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewMaintenance {
    pub title: String,
    #[serde(default)]
    pub body: String,
    pub region: Option<String>,
    pub tenant: Option<String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339, after `starts_at`.
    pub ends_at: String,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(not(fuzzing), derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MaintenancePatch {
    pub title: Option<String>,
    pub body: Option<String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    /// `cancelled`, `completed` or `scheduled` (status follows the clock).
    pub status: Option<String>,
}

/// A JSON body of type `T`.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, BadRequest> {
    if body.is_empty() {
        return Err(BadRequest::new(
            "empty request body: expected a JSON object",
            None,
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        // serde names the field in its message: "missing field `title`", "unknown field `x`"
        let field = msg.split('`').nth(1).filter(|_| msg.contains("field"));
        BadRequest::new(format!("invalid JSON body: {msg}"), field)
    })
}

/// An RFC 3339 time, as Unix seconds.
pub fn parse_time(field: &str, s: &str) -> Result<i64, BadRequest> {
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|e| {
            BadRequest::new(
                format!(
                    "{field}: expected an RFC 3339 time such as 2014-09-25T20:00:00Z, got `{s}`: {e}"
                ),
                Some(field),
            )
        })
}

/// A text field: not blank when `required`, at most `max` characters.
pub fn check_text(field: &str, s: &str, max: usize, required: bool) -> Result<(), BadRequest> {
    if required && s.trim().is_empty() {
        return Err(BadRequest::new(
            format!("{field} must not be empty"),
            Some(field),
        ));
    }
    if s.chars().count() > max {
        return Err(BadRequest::new(
            format!("{field} is longer than {max} characters"),
            Some(field),
        ));
    }
    Ok(())
}

/// A region and a tenant, each of the run's fleet when given.
pub fn check_scope(
    fleet: &Fleet,
    region: Option<&str>,
    tenant: Option<&str>,
) -> Result<(), BadRequest> {
    if let Some(r) = region
        && !fleet.regions.iter().any(|x| x == r)
    {
        return Err(BadRequest::new(
            format!(
                "region: `{r}` is not a region of this run's fleet (regions: {})",
                fleet.regions.join(", ")
            ),
            Some("region"),
        ));
    }
    if let Some(t) = tenant
        && !fleet.tenants.iter().any(|x| x.id == t)
    {
        return Err(BadRequest::new(
            format!("tenant: `{t}` is not a tenant of this run's fleet"),
            Some("tenant"),
        ));
    }
    Ok(())
}

fn check_title_body_scope(
    fleet: &Fleet,
    title: &str,
    body: &str,
    region: Option<&str>,
    tenant: Option<&str>,
) -> Result<(), BadRequest> {
    check_text("title", title, MAX_TITLE, true)?;
    check_text("body", body, MAX_BODY, false)?;
    check_scope(fleet, region, tenant)
}

/// Check a new notice against the run's fleet; its time (`at`, else `now`).
pub fn check_notice(n: &NewNotice, fleet: &Fleet, now: i64) -> Result<i64, BadRequest> {
    check_title_body_scope(
        fleet,
        &n.title,
        &n.body,
        n.region.as_deref(),
        n.tenant.as_deref(),
    )?;
    Ok(match &n.at {
        Some(a) => parse_time("at", a)?,
        None => now,
    })
}

/// Check a new maintenance against the run's fleet; its `(starts_at, ends_at)`.
pub fn check_maintenance(n: &NewMaintenance, fleet: &Fleet) -> Result<(i64, i64), BadRequest> {
    check_title_body_scope(
        fleet,
        &n.title,
        &n.body,
        n.region.as_deref(),
        n.tenant.as_deref(),
    )?;
    let starts_at = parse_time("starts_at", &n.starts_at)?;
    let ends_at = parse_time("ends_at", &n.ends_at)?;
    if ends_at <= starts_at {
        return Err(BadRequest::new(
            format!(
                "ends_at ({}) must be after starts_at ({})",
                n.ends_at, n.starts_at
            ),
            Some("ends_at"),
        ));
    }
    Ok((starts_at, ends_at))
}

/// The editable part of a stored maintenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub title: String,
    pub body: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub state: String,
    /// Bumped when the times change or the maintenance is cancelled (iCalendar SEQUENCE).
    pub sequence: u32,
}

/// Apply a patch to a maintenance: the new schedule and the kind of update to publish.
pub fn apply_patch(
    old: &Schedule,
    p: &MaintenancePatch,
) -> Result<(Schedule, &'static str), BadRequest> {
    let mut m = old.clone();
    if let Some(t) = &p.title {
        check_text("title", t, MAX_TITLE, true)?;
        m.title = t.trim().to_string();
    }
    if let Some(b) = &p.body {
        check_text("body", b, MAX_BODY, false)?;
        m.body = b.clone();
    }
    if let Some(a) = &p.starts_at {
        m.starts_at = parse_time("starts_at", a)?;
    }
    if let Some(a) = &p.ends_at {
        m.ends_at = parse_time("ends_at", a)?;
    }
    if m.ends_at <= m.starts_at {
        return Err(BadRequest::new(
            "ends_at must be after starts_at",
            Some("ends_at"),
        ));
    }
    let mut kind = "maintenance_updated";
    if (m.starts_at, m.ends_at) != (old.starts_at, old.ends_at) {
        m.sequence = m.sequence.saturating_add(1);
        kind = "maintenance_rescheduled";
    }
    if let Some(st) = &p.status {
        kind = match st.as_str() {
            "cancelled" => {
                if m.state != "cancelled" {
                    m.sequence = m.sequence.saturating_add(1);
                }
                "maintenance_cancelled"
            }
            "completed" => "maintenance_completed",
            "scheduled" => kind,
            other => {
                return Err(BadRequest::new(
                    format!("status: expected cancelled, completed or scheduled, got `{other}`"),
                    Some("status"),
                ));
            }
        };
        m.state = st.clone();
    }
    Ok((m, kind))
}
