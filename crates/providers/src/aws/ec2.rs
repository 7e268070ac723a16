//! The EC2 Query API (`Version=2016-11-15`): form-encoded POSTs signed with SigV4, XML
//! answers. The calls rollcall needs: `DescribeInstanceStatus` (scheduled events and
//! status checks), `DescribeInstances`, `RebootInstances`, `RunInstances`,
//! `TerminateInstances`. An error answer becomes [`ProviderError::Ec2`] naming the action,
//! the endpoint, EC2's code and its message.

use super::credentials::Credentials;
use super::sigv4::{self, Scope, uri_encode};
use super::xml::Node;
use crate::http::{Fetch, Method, Request};
use crate::{EventState, ProviderError, ProviderEvent, Source};
use std::sync::Arc;
use std::time::Duration;

const VERSION: &str = "2016-11-15";
/// Instance ids per DescribeInstanceStatus / DescribeInstances request.
const IDS_PER_CALL: usize = 100;

/// `https://ec2.{region}.amazonaws.com`, the API's endpoint for a region.
pub fn default_endpoint(region: &str) -> String {
    format!("https://ec2.{region}.amazonaws.com")
}

/// The tag a replacement carries with its [`client_token`], to be found again after a
/// crash (`DescribeInstances` by tag works everywhere; EC2 also keeps the token itself).
pub const TOKEN_TAG: &str = "rollcall:token";

/// The `ClientToken` of the replacement of `host` in run `run`: the same on every retry,
/// so a replace sent twice launches one instance (at most 64 ASCII characters).
pub fn client_token(run: &str, host: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{run}\0{host}").as_bytes());
    format!("rollcall-{}", &hex::encode(h)[..40])
}

/// A status check's verdict (`instanceStatus` / `systemStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Ok,
    Impaired,
    Initializing,
    InsufficientData,
    NotApplicable,
    /// A value this version does not know (kept as sent).
    Other(String),
}

impl Check {
    fn parse(s: &str) -> Check {
        match s {
            "ok" => Check::Ok,
            "impaired" => Check::Impaired,
            "initializing" => Check::Initializing,
            "insufficient-data" => Check::InsufficientData,
            "not-applicable" => Check::NotApplicable,
            o => Check::Other(o.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Check::Ok => "ok",
            Check::Impaired => "impaired",
            Check::Initializing => "initializing",
            Check::InsufficientData => "insufficient-data",
            Check::NotApplicable => "not-applicable",
            Check::Other(s) => s,
        }
    }
}

/// One instance in a `DescribeInstanceStatus` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    pub instance: String,
    /// `running`, `stopped`, `pending`…
    pub state: String,
    pub instance_check: Check,
    pub system_check: Check,
    pub events: Vec<ProviderEvent>,
}

impl InstanceStatus {
    /// Running with both status checks `ok`: EC2's "back" signal.
    pub fn is_ok(&self) -> bool {
        self.state == "running"
            && self.instance_check == Check::Ok
            && self.system_check == Check::Ok
    }
}

/// One instance in a `DescribeInstances` answer: what a replacement is launched from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceInfo {
    pub instance: String,
    pub state: String,
    pub image: Option<String>,
    pub instance_type: Option<String>,
    pub subnet: Option<String>,
    pub key_name: Option<String>,
    pub security_groups: Vec<String>,
    pub private_ip: Option<String>,
    /// From the `aws:ec2launchtemplate:id` / `aws:ec2launchtemplate:version` tags.
    pub launch_template: Option<(String, String)>,
    pub tags: Vec<(String, String)>,
}

impl InstanceInfo {
    /// The value of its tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Terminated or on its way there.
    pub fn is_gone(&self) -> bool {
        matches!(self.state.as_str(), "shutting-down" | "terminated")
    }
}

/// What `RunInstances` is asked to launch (one instance).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Launch {
    /// `(id, version)`: launch from the template; the fields below then only override.
    pub launch_template: Option<(String, String)>,
    pub image: Option<String>,
    pub instance_type: Option<String>,
    pub subnet: Option<String>,
    pub key_name: Option<String>,
    pub security_groups: Vec<String>,
    pub tags: Vec<(String, String)>,
    /// Idempotency: the same token launches at most one instance.
    pub client_token: String,
}

impl Launch {
    /// The launch that replaces `old`: its launch template if it had one, else its image,
    /// type, subnet, key and security groups.
    pub fn replacing(old: &InstanceInfo, client_token: String) -> Launch {
        let mut l = Launch {
            tags: vec![
                ("rollcall:replaces".into(), old.instance.clone()),
                (TOKEN_TAG.into(), client_token.clone()),
            ],
            client_token,
            ..Launch::default()
        };
        match &old.launch_template {
            Some(t) => l.launch_template = Some(t.clone()),
            None => {
                l.image = old.image.clone();
                l.instance_type = old.instance_type.clone();
                l.subnet = old.subnet.clone();
                l.key_name = old.key_name.clone();
                l.security_groups = old.security_groups.clone();
            }
        }
        l
    }
}

/// A client of one region's EC2 endpoint.
#[derive(Clone)]
pub struct Ec2Client {
    endpoint: String,
    region: String,
    creds: Credentials,
    fetch: Arc<dyn Fetch>,
    timeout: Duration,
}

impl std::fmt::Debug for Ec2Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2Client")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish()
    }
}

impl Ec2Client {
    pub fn new(endpoint: &str, region: &str, creds: Credentials, fetch: Arc<dyn Fetch>) -> Self {
        Ec2Client {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            region: region.to_string(),
            creds,
            fetch,
            timeout: Duration::from_secs(20),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// One signed call; the answer's root element, or the error EC2 answered.
    pub async fn call(
        &self,
        action: &str,
        params: &[(String, String)],
    ) -> Result<Node, ProviderError> {
        let mut body = format!("Action={action}&Version={VERSION}");
        for (k, v) in params {
            body += &format!("&{}={}", uri_encode(k), uri_encode(v));
        }
        let mut req = Request::get(format!("{}/", self.endpoint));
        req.method = Method::Post;
        req.timeout = self.timeout;
        req.headers.push((
            "Content-Type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        ));
        req.body = Some(body);
        let scope = Scope {
            region: &self.region,
            service: "ec2",
        };
        sigv4::sign(&mut req, &self.creds, scope, jiff::Timestamp::now());
        let resp = self.fetch.fetch(req).await?;
        let parse = |e: String| ProviderError::Parse {
            what: format!("EC2 {action} ({})", self.endpoint),
            error: e,
        };
        let root = Node::parse(&resp.body);
        if resp.status == 200 {
            return root.map_err(parse);
        }
        match root.ok().as_ref().and_then(error_of) {
            Some((code, message)) => Err(ProviderError::Ec2 {
                action: action.into(),
                endpoint: self.endpoint.clone(),
                code,
                message,
            }),
            None => Err(ProviderError::Status {
                url: format!("{} (EC2 {action})", self.endpoint),
                status: resp.status,
                body: resp.body.chars().take(300).collect(),
            }),
        }
    }

    /// Status checks, state and scheduled events of `ids` (all of them, running or not:
    /// `IncludeAllInstances`), following `NextToken`.
    pub async fn describe_instance_status(
        &self,
        ids: &[String],
    ) -> Result<Vec<InstanceStatus>, ProviderError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let mut token: Option<String> = None;
            loop {
                let mut p = numbered("InstanceId", chunk);
                p.push(("IncludeAllInstances".into(), "true".into()));
                if let Some(t) = &token {
                    p.push(("NextToken".into(), t.clone()));
                }
                let root = self.call("DescribeInstanceStatus", &p).await?;
                for item in root.items("instanceStatusSet") {
                    out.push(
                        instance_status(item)
                            .map_err(|e| self.parse_err("DescribeInstanceStatus", e))?,
                    );
                }
                token = root.text_at(&["nextToken"]).map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// What `ids` are (image, type, network, launch template, tags), following `NextToken`.
    pub async fn describe_instances(
        &self,
        ids: &[String],
    ) -> Result<Vec<InstanceInfo>, ProviderError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            out.extend(self.describe_where(numbered("InstanceId", chunk)).await?);
        }
        Ok(out)
    }

    /// Instances whose tag `key` is `value` (any state).
    pub async fn instances_tagged(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<InstanceInfo>, ProviderError> {
        self.instances_tagged_any(key, &[value.to_string()]).await
    }

    /// Instances whose tag `key` is one of `values` (any state).
    pub async fn instances_tagged_any(
        &self,
        key: &str,
        values: &[String],
    ) -> Result<Vec<InstanceInfo>, ProviderError> {
        let mut out = Vec::new();
        for chunk in values.chunks(IDS_PER_CALL) {
            let mut p = vec![("Filter.1.Name".into(), format!("tag:{key}"))];
            p.extend(numbered("Filter.1.Value", chunk));
            out.extend(self.describe_where(p).await?);
        }
        Ok(out)
    }

    async fn describe_where(
        &self,
        base: Vec<(String, String)>,
    ) -> Result<Vec<InstanceInfo>, ProviderError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut p = base.clone();
            if let Some(t) = &token {
                p.push(("NextToken".into(), t.clone()));
            }
            let root = self.call("DescribeInstances", &p).await?;
            for r in root.items("reservationSet") {
                for i in r.items("instancesSet") {
                    out.push(instance_info(i).map_err(|e| self.parse_err("DescribeInstances", e))?);
                }
            }
            token = root.text_at(&["nextToken"]).map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    pub async fn reboot_instances(&self, ids: &[String]) -> Result<(), ProviderError> {
        self.call("RebootInstances", &numbered("InstanceId", ids))
            .await?;
        Ok(())
    }

    /// Terminate `ids`; each instance's state after the call.
    pub async fn terminate_instances(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, String)>, ProviderError> {
        let root = self
            .call("TerminateInstances", &numbered("InstanceId", ids))
            .await?;
        let states = root.items("instancesSet").map(|i| {
            let id = i.text_at(&["instanceId"]).unwrap_or_default().to_string();
            let st = i
                .text_at(&["currentState", "name"])
                .unwrap_or_default()
                .to_string();
            (id, st)
        });
        Ok(states.collect())
    }

    /// Launch one instance; its id.
    pub async fn run_instance(&self, l: &Launch) -> Result<String, ProviderError> {
        let root = self.call("RunInstances", &launch_params(l)).await?;
        root.items("instancesSet")
            .next()
            .and_then(|i| i.text_at(&["instanceId"]))
            .map(str::to_string)
            .ok_or_else(|| self.parse_err("RunInstances", "no instanceId in the answer".into()))
    }

    fn parse_err(&self, action: &str, error: String) -> ProviderError {
        ProviderError::Parse {
            what: format!("EC2 {action} ({})", self.endpoint),
            error,
        }
    }
}

/// `Name.1=a&Name.2=b…`
fn numbered(name: &str, values: &[String]) -> Vec<(String, String)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("{name}.{}", i + 1), v.clone()))
        .collect()
}

fn launch_params(l: &Launch) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = vec![
        ("MinCount".into(), "1".into()),
        ("MaxCount".into(), "1".into()),
        ("ClientToken".into(), l.client_token.clone()),
    ];
    if let Some((id, version)) = &l.launch_template {
        p.push(("LaunchTemplate.LaunchTemplateId".into(), id.clone()));
        p.push(("LaunchTemplate.Version".into(), version.clone()));
    }
    for (k, v) in [
        ("ImageId", &l.image),
        ("InstanceType", &l.instance_type),
        ("SubnetId", &l.subnet),
        ("KeyName", &l.key_name),
    ] {
        if let Some(v) = v {
            p.push((k.into(), v.clone()));
        }
    }
    p.extend(numbered("SecurityGroupId", &l.security_groups));
    if !l.tags.is_empty() {
        p.push(("TagSpecification.1.ResourceType".into(), "instance".into()));
        for (i, (k, v)) in l.tags.iter().enumerate() {
            p.push((format!("TagSpecification.1.Tag.{}.Key", i + 1), k.clone()));
            p.push((format!("TagSpecification.1.Tag.{}.Value", i + 1), v.clone()));
        }
    }
    p
}

/// `<Response><Errors><Error><Code>/<Message>` (also a bare `<Errors>` or `<Error>`).
fn error_of(root: &Node) -> Option<(String, String)> {
    let e = [&["Errors", "Error"][..], &["Error"][..], &[][..]]
        .iter()
        .filter_map(|p| root.at(p))
        .find(|n| n.child("Code").is_some())?;
    let code = e.text_at(&["Code"])?.to_string();
    let message = e
        .text_at(&["Message"])
        .unwrap_or("(no message)")
        .to_string();
    Some((code, message))
}

fn instance_status(item: &Node) -> Result<InstanceStatus, String> {
    let instance = item
        .text_at(&["instanceId"])
        .ok_or("an instanceStatusSet item without instanceId")?
        .to_string();
    let check = |k: &str| Check::parse(item.text_at(&[k, "status"]).unwrap_or("insufficient-data"));
    let events = item
        .items("eventsSet")
        .map(|e| event(&instance, e))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(InstanceStatus {
        state: item
            .text_at(&["instanceState", "name"])
            .unwrap_or_default()
            .to_string(),
        instance_check: check("instanceStatus"),
        system_check: check("systemStatus"),
        events,
        instance,
    })
}

/// One `InstanceStatusEvent`: the state from the description's `[Completed]` /
/// `[Canceled]` prefix (also `[Cancelled]`), else scheduled.
fn event(instance: &str, e: &Node) -> Result<ProviderEvent, String> {
    let description = e.text_at(&["description"]).unwrap_or_default().to_string();
    let state = match description.to_ascii_lowercase() {
        d if d.starts_with("[completed]") => EventState::Completed,
        d if d.starts_with("[canceled]") || d.starts_with("[cancelled]") => EventState::Canceled,
        _ => EventState::Scheduled,
    };
    let code = e
        .text_at(&["code"])
        .ok_or_else(|| format!("{instance}: an event without code"))?;
    let time = |k: &str| -> Result<Option<i64>, String> {
        e.text_at(&[k])
            .map(|t| {
                t.parse::<jiff::Timestamp>()
                    .map(|ts| ts.as_second())
                    .map_err(|err| format!("{instance}: event {code}: {k} `{t}`: {err}"))
            })
            .transpose()
    };
    let id = match e.text_at(&["instanceEventId"]) {
        Some(id) => id.to_string(),
        // no id (old answers): the code and the window stand in, so a moved window is new
        None => format!(
            "{instance}:{code}:{}",
            e.text_at(&["notBefore"]).unwrap_or("")
        ),
    };
    Ok(ProviderEvent {
        source: Source::AwsEc2,
        id,
        instance: instance.to_string(),
        code: code.to_string(),
        state,
        not_before: time("notBefore")?,
        not_after: time("notAfter")?,
        deadline: time("notBeforeDeadline")?,
        description,
    })
}

fn instance_info(i: &Node) -> Result<InstanceInfo, String> {
    let text = |p: &[&str]| i.text_at(p).map(str::to_string);
    let instance = text(&["instanceId"]).ok_or("an instancesSet item without instanceId")?;
    let tags: Vec<(String, String)> = i
        .items("tagSet")
        .filter_map(|t| {
            Some((
                t.text_at(&["key"])?.to_string(),
                t.text_at(&["value"]).unwrap_or("").to_string(),
            ))
        })
        .collect();
    let tag = |k: &str| tags.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let launch_template = tag("aws:ec2launchtemplate:id").map(|id| {
        (
            id,
            tag("aws:ec2launchtemplate:version").unwrap_or_else(|| "$Default".into()),
        )
    });
    Ok(InstanceInfo {
        state: text(&["instanceState", "name"]).unwrap_or_default(),
        image: text(&["imageId"]),
        instance_type: text(&["instanceType"]),
        subnet: text(&["subnetId"]),
        key_name: text(&["keyName"]),
        security_groups: i
            .items("groupSet")
            .filter_map(|g| g.text_at(&["groupId"]).map(str::to_string))
            .collect(),
        private_ip: text(&["privateIpAddress"]),
        launch_template,
        tags,
        instance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of the API reference's DescribeInstanceStatus example, with a completed
    /// and a canceled event, and a second page.
    const STATUS: &str = r#"<DescribeInstanceStatusResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>3be1508e-c444-4fef-89cc-0b1223c4f02fEXAMPLE</requestId>
  <instanceStatusSet>
    <item>
      <instanceId>i-1234567890abcdef0</instanceId>
      <availabilityZone>us-east-1d</availabilityZone>
      <instanceState><code>16</code><name>running</name></instanceState>
      <systemStatus><status>impaired</status></systemStatus>
      <instanceStatus><status>ok</status></instanceStatus>
      <eventsSet>
        <item>
          <instanceEventId>instance-event-0d59937288b749b32</instanceEventId>
          <code>system-reboot</code>
          <description>The instance is scheduled for a reboot</description>
          <notBefore>2026-12-10T02:00:00.000Z</notBefore>
          <notAfter>2026-12-10T04:00:00.000Z</notAfter>
          <notBeforeDeadline>2026-12-17T02:00:00.000Z</notBeforeDeadline>
        </item>
        <item>
          <instanceEventId>instance-event-1</instanceEventId>
          <code>instance-reboot</code>
          <description>[Completed] The instance is scheduled for a reboot</description>
          <notBefore>2026-12-01T02:00:00Z</notBefore>
        </item>
        <item>
          <instanceEventId>instance-event-2</instanceEventId>
          <code>system-maintenance</code>
          <description>[Canceled] network maintenance</description>
          <notBefore>2026-12-02T02:00:00+00:00</notBefore>
        </item>
      </eventsSet>
    </item>
  </instanceStatusSet>
  <nextToken>page-2</nextToken>
</DescribeInstanceStatusResponse>"#;

    #[test]
    fn events_states_checks_and_the_next_page_are_read() {
        let root = Node::parse(STATUS).unwrap();
        assert_eq!(root.text_at(&["nextToken"]), Some("page-2"));
        let s = instance_status(root.items("instanceStatusSet").next().unwrap()).unwrap();
        assert_eq!(s.state, "running");
        assert_eq!(
            (s.instance_check.clone(), s.system_check.clone()),
            (Check::Ok, Check::Impaired)
        );
        assert!(!s.is_ok());
        let states: Vec<_> = s.events.iter().map(|e| e.state).collect();
        assert_eq!(
            states,
            [
                EventState::Scheduled,
                EventState::Completed,
                EventState::Canceled
            ]
        );
        let e = &s.events[0];
        assert_eq!(e.id, "instance-event-0d59937288b749b32");
        assert_eq!(e.code, "system-reboot");
        assert_eq!(e.source, Source::AwsEc2);
        let nb: jiff::Timestamp = "2026-12-10T02:00:00Z".parse().unwrap();
        assert_eq!(e.not_before, Some(nb.as_second()));
        assert_eq!(e.not_after, Some(nb.as_second() + 7200));
        assert_eq!(e.deadline, Some(nb.as_second() + 7 * 86400));
        assert_eq!(s.events[2].not_before, Some(nb.as_second() - 8 * 86400));
    }

    #[test]
    fn a_bad_time_is_an_error_naming_the_instance_and_field() {
        let bad = STATUS.replace("2026-12-10T04:00:00.000Z", "tomorrow");
        let root = Node::parse(&bad).unwrap();
        let err = instance_status(root.items("instanceStatusSet").next().unwrap()).unwrap_err();
        assert!(
            err.contains("i-1234567890abcdef0") && err.contains("notAfter `tomorrow`"),
            "{err}"
        );
    }

    #[test]
    fn ec2_error_answers_name_code_and_message() {
        let x = "<?xml version=\"1.0\"?><Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID 'i-1' does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>";
        let (code, msg) = error_of(&Node::parse(x).unwrap()).unwrap();
        assert_eq!(code, "InvalidInstanceID.NotFound");
        assert_eq!(msg, "The instance ID 'i-1' does not exist");
        assert_eq!(error_of(&Node::parse("<a><b/></a>").unwrap()), None);
    }

    #[test]
    fn a_replacement_comes_from_the_launch_template_else_the_old_instance() {
        let mut old = InstanceInfo {
            instance: "i-old".into(),
            image: Some("ami-1".into()),
            instance_type: Some("t3.micro".into()),
            security_groups: vec!["sg-1".into(), "sg-2".into()],
            ..InstanceInfo::default()
        };
        let l = Launch::replacing(&old, "tok".into());
        let p = launch_params(&l);
        let has = |k: &str, v: &str| p.iter().any(|(a, b)| a == k && b == v);
        assert!(has("ImageId", "ami-1") && has("InstanceType", "t3.micro"));
        assert!(has("SecurityGroupId.2", "sg-2") && has("ClientToken", "tok"));
        assert!(has("TagSpecification.1.Tag.1.Key", "rollcall:replaces"));
        assert!(has("TagSpecification.1.Tag.1.Value", "i-old"));
        old.launch_template = Some(("lt-1".into(), "3".into()));
        let p = launch_params(&Launch::replacing(&old, "tok".into()));
        let has = |k: &str, v: &str| p.iter().any(|(a, b)| a == k && b == v);
        assert!(
            has("LaunchTemplate.LaunchTemplateId", "lt-1") && has("LaunchTemplate.Version", "3")
        );
        assert!(!p.iter().any(|(k, _)| k == "ImageId"));
    }

    /// Answers page 1 (with a next token) then page 2, and keeps every request.
    struct Pages(std::sync::Mutex<Vec<Request>>);

    impl Fetch for Pages {
        fn fetch(
            &self,
            req: Request,
        ) -> crate::http::BoxFuture<'_, Result<crate::http::Response, ProviderError>> {
            let mut seen = self.0.lock().unwrap();
            let page = |id: &str, next: &str| {
                format!(
                    "<DescribeInstanceStatusResponse><instanceStatusSet><item><instanceId>{id}</instanceId><instanceState><name>running</name></instanceState><instanceStatus><status>ok</status></instanceStatus><systemStatus><status>ok</status></systemStatus></item></instanceStatusSet>{next}</DescribeInstanceStatusResponse>"
                )
            };
            let body = match req.body.as_deref().unwrap_or("").contains("NextToken=") {
                false => page("i-00000001", "<nextToken>tok/2+</nextToken>"),
                true => page("i-00000002", ""),
            };
            seen.push(req);
            Box::pin(async move { Ok(crate::http::Response { status: 200, body }) })
        }
    }

    #[tokio::test]
    async fn pages_are_followed_and_every_request_is_signed_form_encoded() {
        let pages = Arc::new(Pages(Default::default()));
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "s".into(),
            session_token: Some("tok".into()),
        };
        let c = Ec2Client::new(
            "https://ec2.eu-west-1.amazonaws.com/",
            "eu-west-1",
            creds,
            pages.clone(),
        );
        let ids = vec!["i-00000001".to_string(), "i-00000002".to_string()];
        let st = c.describe_instance_status(&ids).await.unwrap();
        let got: Vec<_> = st.iter().map(|s| s.instance.as_str()).collect();
        assert_eq!(got, ["i-00000001", "i-00000002"]);
        let reqs = pages.0.lock().unwrap();
        assert_eq!(reqs.len(), 2);
        let body = reqs[0].body.as_deref().unwrap();
        assert_eq!(
            body,
            "Action=DescribeInstanceStatus&Version=2016-11-15&InstanceId.1=i-00000001&InstanceId.2=i-00000002&IncludeAllInstances=true"
        );
        assert!(
            reqs[1]
                .body
                .as_deref()
                .unwrap()
                .ends_with("&NextToken=tok%2F2%2B")
        );
        for r in reqs.iter() {
            assert_eq!(
                (r.method, r.url.as_str()),
                (Method::Post, "https://ec2.eu-west-1.amazonaws.com/")
            );
            let h = |k: &str| {
                r.headers
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.as_str())
            };
            let auth = h("Authorization").expect("signed");
            assert!(auth.contains("/eu-west-1/ec2/aws4_request"), "{auth}");
            assert!(
                auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"),
                "{auth}"
            );
            assert_eq!(h("X-Amz-Security-Token"), Some("tok"));
        }
    }
}
