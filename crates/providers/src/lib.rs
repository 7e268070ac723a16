//! Cloud providers' maintenance notices, read live, in one vocabulary.
//!
//! Each source speaks its provider's documented wire format and turns what it reads into
//! [`ProviderEvent`]s; the guard (`rollcall guard`, `rollcall notices pull`) maps them to
//! fleet hosts, journals them and plans ahead of their `not_before`. Parsers are pure
//! functions over the documented payloads; the HTTP exchange is separate, so the same
//! parser serves a payload fetched directly and one read on the host (`curl` over SSH).
//!
//! Sources:
//! - `aws`: the EC2 API (`DescribeInstanceStatus` events, SigV4-signed) and the on-instance
//!   metadata path `events/maintenance/scheduled`;
//! - `azure`: Scheduled Events (`/metadata/scheduledevents`), with early approval
//!   (`StartRequests`);
//! - `gcp`: `instance/maintenance-event` and `instance/upcoming-maintenance`.

use serde::Serialize;

/// Where a notice came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The EC2 API's `DescribeInstanceStatus`.
    AwsEc2,
    /// The instance metadata service, `events/maintenance/scheduled` (IMDSv2).
    AwsImds,
    /// Azure Instance Metadata Service, Scheduled Events.
    Azure,
    /// GCP metadata server, `maintenance-event` and `upcoming-maintenance`.
    Gcp,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::AwsEc2 => "aws-ec2",
            Source::AwsImds => "aws-imds",
            Source::Azure => "azure",
            Source::Gcp => "gcp",
        }
    }
}

/// Where an event is in its life, in the provider's terms mapped to one vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// Announced, not started (AWS `active`, Azure `Scheduled`, GCP `PENDING`).
    Scheduled,
    /// Under way (Azure `Started`, GCP `ONGOING` or a `maintenance-event` other than `NONE`).
    Started,
    /// Done (AWS `[Completed]` / `completed`; an Azure event that disappeared after it started).
    Completed,
    /// Withdrawn by the provider (AWS `[Canceled]` / `canceled`; an Azure event that
    /// disappeared before it started).
    Canceled,
}

impl EventState {
    /// Still to be dealt with (scheduled or under way).
    pub fn is_open(self) -> bool {
        matches!(self, EventState::Scheduled | EventState::Started)
    }
}

/// One provider maintenance event for one instance, as read at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderEvent {
    pub source: Source,
    /// The provider's id of the event (`InstanceEventId`, Azure `EventId`; GCP has none:
    /// the window start stands in, so a moved window is a new event).
    pub id: String,
    /// The instance as the provider names it (`i-…`, the Azure resource name, the GCP
    /// instance); for metadata sources, the fleet host whose metadata was read.
    pub instance: String,
    /// The provider's event code (`system-reboot`, `Reboot`, `TERMINATE_ON_HOST_MAINTENANCE`…).
    pub code: String,
    pub state: EventState,
    /// Earliest start of the provider's window, Unix seconds (`None`: unknown, or started).
    pub not_before: Option<i64>,
    /// End of the window, Unix seconds.
    pub not_after: Option<i64>,
    /// Latest the provider lets the window be moved to (`NotBeforeDeadline`,
    /// `latest_window_start_time`).
    pub deadline: Option<i64>,
    pub description: String,
}

impl ProviderEvent {
    /// `source:id`, unique across providers.
    pub fn key(&self) -> String {
        format!("{}:{}", self.source.as_str(), self.id)
    }
}

pub mod aws;
pub mod azure;
pub mod gcp;
pub mod http;
pub mod imds;
pub mod settings;
pub mod wire;

pub use wire::MetaHost;

/// What went wrong reading a provider; each names where.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("{url}: {error}")]
    Http { url: String, error: String },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{what}: cannot parse the provider's answer: {error}")]
    Parse { what: String, error: String },
    #[error("{0}")]
    Credentials(String),
    /// An Azure approval (`StartRequests`) that did not go through.
    #[error("{host}: approving event {event}: {error}")]
    Approve {
        host: String,
        event: String,
        error: Box<ProviderError>,
    },
    #[error("{host} is not among the {} hosts", .provider.as_str())]
    NotCovered { provider: Source, host: String },
    /// An error answer of the EC2 API (`<Errors><Error><Code>`/`<Message>`).
    #[error("EC2 {action} ({endpoint}): {code}: {message}")]
    Ec2 {
        action: String,
        endpoint: String,
        code: String,
        message: String,
    },
}

/// How a metadata service that answers only on the instance is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// On the host, over the driver's transport (`curl` over SSH): the default.
    Ssh,
    /// From rollcall's own process (rollcall runs on the instance, or the endpoint is
    /// reachable from it).
    Direct,
}

/// Where a metadata service is, and how it is read (`[azure]`, `[gcp]`, `[aws.imds]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetadataAccess {
    /// Base URL, e.g. `http://169.254.169.254` (per host overrides in `[<table>.host.<id>]`).
    pub endpoint: String,
    pub via: Via,
}

/// What one source read for one fleet host: its events, or why it could not read them
/// (an unread host is unknown, never "no maintenance").
#[derive(Debug)]
pub struct Pulled {
    /// The fleet host's id.
    pub host: String,
    pub source: Source,
    pub events: Result<Vec<ProviderEvent>, ProviderError>,
}

/// A live source of notices: reads every host it covers.
pub trait NoticeSource: Send + Sync {
    fn source(&self) -> Source;
    /// The fleet hosts it covers.
    fn hosts(&self) -> Vec<String>;
    fn pull<'a>(&'a self, fetch: &'a dyn http::HostFetch) -> http::BoxFuture<'a, Vec<Pulled>>;
}
