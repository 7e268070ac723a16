//! Unsubscribe links (RFC 2369 `List-Unsubscribe`, RFC 8058 one-click): the token is
//! `<base64url(subscriber id)>.<base64url(HMAC-SHA256(key, subscriber id))>` with a
//! per-deployment key kept in the store (`notify_secret`, made on first use), so a
//! token cannot be guessed or made for another subscriber. Unsubscribing is recorded in
//! `notify_unsubscribed` (deployment-wide, by subscriber id); notifiers count such a
//! subscriber as gone, as after an HTTP 410 from its webhook.

use crate::{Notifier, NotifyError, init, wall_ms};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use rollcall_store::Store;
use sha2::Sha256;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The deployment's unsubscribe key (created once; every process reads the same).
pub async fn secret(store: &Store) -> Result<Vec<u8>, NotifyError> {
    init(store).await?;
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| NotifyError::Admin(format!("randomness: {e}")))?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    sqlx::query("INSERT INTO notify_secret (id, secret) VALUES (1, $1) ON CONFLICT DO NOTHING")
        .bind(hex)
        .execute(store.pool())
        .await?;
    let s: String = sqlx::query_scalar("SELECT secret FROM notify_secret WHERE id = 1")
        .fetch_one(store.pool())
        .await?;
    Ok(s.into_bytes())
}

fn mac(key: &[u8], subscriber: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(subscriber.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// The unsubscribe token of one subscriber.
pub fn token(key: &[u8], subscriber: &str) -> String {
    format!(
        "{}.{}",
        B64.encode(subscriber.as_bytes()),
        B64.encode(mac(key, subscriber))
    )
}

/// The subscriber a token is for, if it is genuine.
pub fn verify(key: &[u8], token: &str) -> Option<String> {
    let (id, sig) = token.split_once('.')?;
    let id = String::from_utf8(B64.decode(id).ok()?).ok()?;
    let got = B64.decode(sig).ok()?;
    let want = mac(key, &id);
    let same =
        got.len() == want.len() && got.iter().zip(&want).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0;
    same.then_some(id)
}

/// Record that the token's subscriber unsubscribed (again: no change). `None`: not a
/// genuine token.
pub async fn unsubscribe(store: &Store, token: &str) -> Result<Option<String>, NotifyError> {
    let key = secret(store).await?;
    let Some(id) = verify(&key, token) else {
        return Ok(None);
    };
    sqlx::query(
        "INSERT INTO notify_unsubscribed (subscriber, at_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(&id)
    .bind(wall_ms())
    .execute(store.pool())
    .await?;
    Ok(Some(id))
}

/// Whether a genuine token's subscriber has unsubscribed; `None`: not a genuine token.
pub async fn status(store: &Store, token: &str) -> Result<Option<(String, bool)>, NotifyError> {
    let key = secret(store).await?;
    let Some(id) = verify(&key, token) else {
        return Ok(None);
    };
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM notify_unsubscribed WHERE subscriber = $1")
            .bind(&id)
            .fetch_one(store.pool())
            .await?;
    Ok(Some((id, n > 0)))
}

impl Notifier {
    /// The `List-Unsubscribe` value for a subscriber: the https/http link (with
    /// `[notify] page_url`) and the mailto (with `[notify] unsubscribe_mailto`).
    pub(crate) fn unsubscribe_links(&self, subscriber: &str) -> Option<String> {
        let s = &self.cfg.settings;
        let t = token(&self.unsub_key, subscriber);
        let mut v = Vec::new();
        if let Some(p) = &s.page_url {
            v.push(format!("<{}>", page_link(p, &t)));
        }
        if let Some(m) = &s.unsubscribe_mailto {
            v.push(format!("<mailto:{m}?subject=unsubscribe%20{t}>"));
        }
        (!v.is_empty()).then(|| v.join(", "))
    }

    /// The subscriber's unsubscribe page, `{page_url}/unsubscribe/{token}` (with
    /// `[notify] page_url`): the one-click link of mail and a webhook's `meta.unsubscribe`.
    pub(crate) fn unsubscribe_url(&self, subscriber: &str) -> Option<String> {
        let p = self.cfg.settings.page_url.as_ref()?;
        Some(page_link(p, &token(&self.unsub_key, subscriber)))
    }
}

/// The unsubscribe page of token `t` under the status page at `page_url`.
fn page_link(page_url: &str, t: &str) -> String {
    format!("{page_url}/unsubscribe/{t}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_subscriber_and_cannot_be_made_for_another() {
        let t = token(b"k1", "ops@acme.example");
        assert_eq!(verify(b"k1", &t).as_deref(), Some("ops@acme.example"));
        assert_eq!(verify(b"k2", &t), None);
        let (_, sig) = t.split_once('.').unwrap();
        let forged = format!("{}.{sig}", B64.encode("ceo@acme.example"));
        assert_eq!(verify(b"k1", &forged), None);
        assert_eq!(verify(b"k1", "garbage"), None);
    }
}
