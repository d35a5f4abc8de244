//! HTTP Basic authentication as Twilio checks it: the account's AccountSid and auth token, or an
//! API key's sid and secret, for the account named in the path. Anything else is 401 with code
//! 20003 (and `WWW-Authenticate`), whatever was wrong: the answer never says which part.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::error::ApiError;
use super::settings::Account;
use crate::guard::token::constant_time_eq;

/// Checks the `Authorization` header of a request for `path_account`'s resources.
pub fn authenticate(
    authorization: Option<&str>,
    account: &Account,
    path_account: &str,
) -> Result<(), ApiError> {
    let (user, password) = authorization
        .and_then(basic_credentials)
        .ok_or_else(ApiError::authenticate)?;
    let account_matches = constant_time_eq(user.as_bytes(), account.account_sid.as_bytes())
        && constant_time_eq(password.as_bytes(), account.auth_token.expose().as_bytes());
    let key_matches = account.api_key.as_ref().is_some_and(|key| {
        constant_time_eq(user.as_bytes(), key.sid.as_bytes())
            && constant_time_eq(password.as_bytes(), key.secret.expose().as_bytes())
    });
    if (account_matches || key_matches) && path_account == account.account_sid {
        Ok(())
    } else {
        Err(ApiError::authenticate())
    }
}

/// `Basic base64(user:password)` → (user, password).
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::twilio_emulator::settings::ApiKey;
    use crate::redact::Secret;

    const SID: &str = "AC00000000000000000000000000000000";

    fn account() -> Account {
        Account {
            account_sid: SID.into(),
            auth_token: Secret::new("token"),
            api_key: Some(ApiKey {
                sid: "SK1".into(),
                secret: Secret::new("secret"),
            }),
        }
    }

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", BASE64.encode(format!("{user}:{password}")))
    }

    #[test]
    fn the_account_or_its_api_key_is_accepted() {
        assert!(authenticate(Some(&basic(SID, "token")), &account(), SID).is_ok());
        assert!(authenticate(Some(&basic("SK1", "secret")), &account(), SID).is_ok());
    }

    #[test]
    fn anything_else_is_20003() {
        for header in [
            None,
            Some(basic(SID, "wrong")),
            Some(basic("SK1", "token")),
            Some("Bearer token".to_owned()),
            Some("Basic !!!".to_owned()),
        ] {
            let error = authenticate(header.as_deref(), &account(), SID).unwrap_err();
            assert_eq!((error.status, error.code), (401, 20003));
        }
        let other = "AC11111111111111111111111111111111";
        assert!(authenticate(Some(&basic(SID, "token")), &account(), other).is_err());
    }
}
