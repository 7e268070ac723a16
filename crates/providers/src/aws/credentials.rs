//! AWS credentials: from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`), else from the shared credentials file
//! (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`) at the profile
//! `AWS_PROFILE`, else the fleet file's `[aws] profile`, else `default`.
//!
//! What is missing is said with where it was looked for; the secret is never printed.

use crate::ProviderError;
use std::path::{Path, PathBuf};

/// An access key, its secret and (temporary credentials) a session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Credentials {
    /// From this process's environment; `profile` is the fleet file's `[aws] profile`.
    pub fn load(profile: Option<&str>) -> Result<Credentials, ProviderError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Credentials::resolve(|k| std::env::var(k).ok(), home.as_deref(), profile)
    }

    /// From the variables `env` gives, with `home` for `~/.aws/credentials`.
    pub fn resolve(
        env: impl Fn(&str) -> Option<String>,
        home: Option<&Path>,
        profile: Option<&str>,
    ) -> Result<Credentials, ProviderError> {
        let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => {
                return Ok(Credentials {
                    access_key_id: id,
                    secret_access_key: secret,
                    session_token: var("AWS_SESSION_TOKEN"),
                });
            }
            (Some(_), None) => {
                return Err(bad(
                    "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not",
                ));
            }
            (None, None) => {}
        }
        let profile = var("AWS_PROFILE")
            .or_else(|| profile.map(str::to_string))
            .unwrap_or_else(|| "default".into());
        let none =
            "no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, and";
        shared(&var, home, &profile, none)
    }

    /// A host's own profile (`[aws.host.<id>] profile`), from the shared credentials
    /// file only: the environment's keys and `AWS_PROFILE` are the fleet's, not this host's.
    pub fn resolve_profile(
        env: impl Fn(&str) -> Option<String>,
        home: Option<&Path>,
        profile: &str,
    ) -> Result<Credentials, ProviderError> {
        let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        shared(&var, home, profile, &format!("profile `{profile}`:"))
    }
}

/// `profile` of the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
/// `~/.aws/credentials`); `why` starts the error when the file cannot be read.
fn shared(
    var: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
    profile: &str,
    why: &str,
) -> Result<Credentials, ProviderError> {
    let file = match (var("AWS_SHARED_CREDENTIALS_FILE"), home) {
        (Some(f), _) => PathBuf::from(f),
        (None, Some(h)) => h.join(".aws/credentials"),
        (None, None) => {
            return Err(bad(format!(
                "{why} neither AWS_SHARED_CREDENTIALS_FILE nor HOME says where a credentials file is"
            )));
        }
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| bad(format!("{why} {} cannot be read ({e})", file.display())))?;
    from_file(&text, &file, profile)
}

/// The credentials of the `[aws]` hosts, resolved once at the start: the fleet's (for
/// hosts without a profile of their own) and each host profile's.
#[derive(Debug, Clone, Default)]
pub struct CredentialSet {
    fleet: Option<Credentials>,
    profiles: std::collections::BTreeMap<String, Credentials>,
}

impl CredentialSet {
    /// What the hosts of `aws` need, from this process's environment (only those: a
    /// profile no host uses is not read).
    pub fn load(aws: &super::config::AwsSettings) -> Result<CredentialSet, ProviderError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        CredentialSet::resolve(aws, &|k| std::env::var(k).ok(), home.as_deref())
    }

    /// What the hosts of `aws` need, from the variables `env` gives.
    pub fn resolve(
        aws: &super::config::AwsSettings,
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<CredentialSet, ProviderError> {
        let mut set = CredentialSet::default();
        for h in aws.hosts.values() {
            match &h.profile {
                None if set.fleet.is_none() => {
                    set.fleet = Some(Credentials::resolve(env, home, aws.profile.as_deref())?);
                }
                Some(p) if !set.profiles.contains_key(p) => {
                    let c = Credentials::resolve_profile(env, home, p)?;
                    set.profiles.insert(p.clone(), c);
                }
                _ => {}
            }
        }
        Ok(set)
    }

    /// The same credentials for every host (tests, one account).
    pub fn single(c: Credentials) -> CredentialSet {
        CredentialSet {
            fleet: Some(c),
            profiles: Default::default(),
        }
    }

    /// The credentials for a host with `profile` of its own (or none); a set made by
    /// [`CredentialSet::single`] answers its one set for every profile.
    pub fn get(&self, profile: Option<&str>) -> Result<&Credentials, ProviderError> {
        let found = match profile {
            Some(p) => self.profiles.get(p).or(self.fleet.as_ref()),
            None => self.fleet.as_ref(),
        };
        found.ok_or_else(|| {
            bad(format!(
                "no credentials were loaded for {}",
                profile.map_or("the fleet".into(), |p| format!("profile `{p}`"))
            ))
        })
    }
}

fn bad(msg: impl Into<String>) -> ProviderError {
    ProviderError::Credentials(msg.into())
}

/// One profile of a shared credentials file (INI: `[name]`, `key = value`, `#`/`;` comments).
fn from_file(text: &str, file: &Path, profile: &str) -> Result<Credentials, ProviderError> {
    let mut section: Option<&str> = None;
    let mut seen = Vec::new();
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let name = name.trim();
            seen.push(name.to_string());
            section = Some(name);
            continue;
        }
        if section != Some(profile) {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        let v = Some(v.trim().to_string()).filter(|v| !v.is_empty());
        match k.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => id = v,
            "aws_secret_access_key" => secret = v,
            "aws_session_token" => token = v,
            _ => {}
        }
    }
    let at = || format!("{} [{profile}]", file.display());
    if !seen.iter().any(|s| s == profile) {
        return Err(bad(format!(
            "no profile `{profile}` in {} (profiles there: {}); set AWS_PROFILE or [aws] profile, or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY variables",
            file.display(),
            if seen.is_empty() {
                "none".into()
            } else {
                seen.join(", ")
            }
        )));
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: token,
        }),
        (None, _) => Err(bad(format!("{}: no aws_access_key_id", at()))),
        (_, None) => Err(bad(format!("{}: no aws_secret_access_key", at()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn tmp_file(name: &str, text: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rollcall-creds-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("credentials");
        std::fs::write(&f, text).unwrap();
        f
    }

    const FILE: &str = "# shared\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\n[ops]\naws_access_key_id=AKIDOPS\naws_secret_access_key=s2\naws_session_token = tok\n[broken]\naws_access_key_id = AKIDBROKEN\n";

    #[test]
    fn the_environment_comes_first_with_its_session_token() {
        let e = env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-SECRET"),
            ("AWS_SESSION_TOKEN", "FQoGZXIvYXdz-TOKEN"),
        ]);
        let c = Credentials::resolve(e, None, Some("ops")).unwrap();
        assert_eq!(c.access_key_id, "AKIDENV");
        assert_eq!(c.session_token.as_deref(), Some("FQoGZXIvYXdz-TOKEN"));
        assert!(
            !format!("{c:?}").contains("wJalr"),
            "the secret is never printed"
        );
        assert!(!format!("{c:?}").contains("FQoG"), "nor the session token");
    }

    #[test]
    fn half_a_key_in_the_environment_is_an_error_naming_the_missing_variable() {
        let e = env(&[("AWS_ACCESS_KEY_ID", "AKIDENV")]);
        let err = Credentials::resolve(e, None, None).unwrap_err().to_string();
        assert!(err.contains("AWS_SECRET_ACCESS_KEY is not"), "{err}");
    }

    #[test]
    fn profiles_come_from_aws_profile_then_the_fleet_file_then_default() {
        let f = tmp_file("profiles", FILE);
        let file = f.to_str().unwrap();
        let base = [("AWS_SHARED_CREDENTIALS_FILE", file)];
        let c = Credentials::resolve(env(&base), None, None).unwrap();
        assert_eq!(c.access_key_id, "AKIDDEFAULT");
        assert_eq!(c.session_token, None);
        let c = Credentials::resolve(env(&base), None, Some("ops")).unwrap();
        assert_eq!(c.access_key_id, "AKIDOPS");
        assert_eq!(c.session_token.as_deref(), Some("tok"));
        let e = env(&[base[0], ("AWS_PROFILE", "default")]);
        let c = Credentials::resolve(e, None, Some("ops")).unwrap();
        assert_eq!(c.access_key_id, "AKIDDEFAULT");
    }

    #[test]
    fn the_default_file_is_under_home() {
        let f = tmp_file("home", FILE);
        let home = f.parent().unwrap().join("home");
        std::fs::create_dir_all(home.join(".aws")).unwrap();
        std::fs::copy(&f, home.join(".aws/credentials")).unwrap();
        let c = Credentials::resolve(env(&[]), Some(&home), None).unwrap();
        assert_eq!(c.access_key_id, "AKIDDEFAULT");
    }

    #[test]
    fn what_is_missing_is_said_with_where_it_was_looked_for() {
        let f = tmp_file("missing", FILE);
        let file = f.to_str().unwrap();
        let e = || env(&[("AWS_SHARED_CREDENTIALS_FILE", file)]);
        let err = Credentials::resolve(e(), None, Some("nope"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no profile `nope`") && err.contains(file),
            "{err}"
        );
        assert!(err.contains("default, ops, broken"), "{err}");
        let err = Credentials::resolve(e(), None, Some("broken"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("[broken]: no aws_secret_access_key"), "{err}");
        let gone = env(&[("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")]);
        let err = Credentials::resolve(gone, None, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("AWS_ACCESS_KEY_ID") && err.contains("/nonexistent/credentials"),
            "{err}"
        );
    }
}
