//! The Twilio REST client's settings: which account, which credentials, where Twilio's API is and
//! how long an attempt may take.
//!
//! Optional as a whole: without `TWILIO_ACCOUNT_SID` the server answers calls but cannot place,
//! transfer or hang up calls through Twilio. The auth token is the one `TWILIO_AUTH_TOKEN` already
//! gives the signature checks (read once, in [`super::security`]).

use std::time::Duration;

use super::vars::Vars;
use super::ConfigError;
use crate::redact::Secret;

/// Twilio's API, unless `TWILIO_API_BASE` names another (an emulator).
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";

/// How Twilio's REST client reaches and authenticates to Twilio.
#[derive(Debug, Clone)]
pub struct TwilioRestSettings {
    /// The account calls are placed from (`TWILIO_ACCOUNT_SID`, `AC` + 32 hex digits); not secret.
    pub account_sid: String,
    /// HTTP Basic credentials.
    pub credentials: TwilioCredentials,
    /// Scheme, host and optional port (and path prefix) without a trailing `/`, to which
    /// `/2010-04-01/Accounts/{AccountSid}/…` is appended (`TWILIO_API_BASE`).
    pub api_base: String,
    /// How long one attempt (connect, send, read the answer) may take (`TWILIO_REST_TIMEOUT`).
    pub timeout: Duration,
}

/// The HTTP Basic credentials of Twilio's REST API.
#[derive(Debug, Clone)]
pub enum TwilioCredentials {
    /// `AccountSid:AuthToken` (`TWILIO_AUTH_TOKEN`).
    AuthToken(Secret),
    /// `ApiKeySid:ApiKeySecret`: a key that can be revoked on its own (`TWILIO_API_KEY_SID`,
    /// `TWILIO_API_KEY_SECRET`).
    ApiKey {
        /// The key's SID (`SK` + 32 hex digits); not secret.
        sid: String,
        /// The key's secret, shown once by Twilio when the key was made.
        secret: Secret,
    },
    /// The development auth token the server generates into `DATA_DIR` when `TWILIO_AUTH_TOKEN`
    /// is unset: only for a local emulator (`TWILIO_API_BASE` set, no `TWILIO_ACCOUNT_SID`),
    /// resolved to [`TwilioCredentials::AuthToken`] when the server starts.
    Generated,
}

impl TwilioCredentials {
    /// The Basic user name and password for `account_sid`; `None` for a generated token not yet
    /// resolved.
    pub fn basic<'a>(&'a self, account_sid: &'a str) -> Option<(&'a str, &'a Secret)> {
        match self {
            Self::AuthToken(token) => Some((account_sid, token)),
            Self::ApiKey { sid, secret } => Some((sid, secret)),
            Self::Generated => None,
        }
    }
}

impl TwilioRestSettings {
    /// `TWILIO_API_BASE`, `TWILIO_REST_TIMEOUT` (checked even when unused, so a typo shows at
    /// once), then `TWILIO_ACCOUNT_SID` and the credentials: the API key when both it and
    /// `auth_token` (`TWILIO_AUTH_TOKEN`) are given. `None` without an account SID.
    pub(super) fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &Vars<'_, F>,
        auth_token: Option<&Secret>,
    ) -> Result<Option<Self>, ConfigError> {
        let api_base = api_base(vars)?;
        let timeout = vars.duration("TWILIO_REST_TIMEOUT", "10s")?;
        if timeout > MAX_TIMEOUT {
            return Err(vars.invalid(
                "TWILIO_REST_TIMEOUT",
                format!("{timeout:?} (at most {MAX_TIMEOUT:?})"),
            ));
        }
        let api_key = api_key(vars)?;
        let Some(account_sid) = vars.get("TWILIO_ACCOUNT_SID") else {
            if api_key.is_some() {
                return Err(vars.invalid(
                    "TWILIO_ACCOUNT_SID",
                    "required with TWILIO_API_KEY_SID (the key belongs to an account)".into(),
                ));
            }
            // A local emulator named without an account: its default account, signed with the
            // auth token the webhooks are checked with (generated in development).
            if api_base == DEFAULT_API_BASE {
                return Ok(None);
            }
            let credentials = auth_token.map_or(TwilioCredentials::Generated, |token| {
                TwilioCredentials::AuthToken(token.clone())
            });
            return Ok(Some(Self {
                account_sid: LOCAL_ACCOUNT_SID.to_owned(),
                credentials,
                api_base,
                timeout,
            }));
        };
        if !is_sid(&account_sid, "AC") {
            return Err(vars.invalid("TWILIO_ACCOUNT_SID", sid_expected("AC", &account_sid)));
        }
        let credentials = match (api_key, auth_token) {
            (Some(key), _) => key,
            (None, Some(token)) => TwilioCredentials::AuthToken(token.clone()),
            (None, None) => {
                return Err(vars.invalid(
                    "TWILIO_AUTH_TOKEN",
                    "required with TWILIO_ACCOUNT_SID, unless TWILIO_API_KEY_SID and \
                     TWILIO_API_KEY_SECRET are set"
                        .into(),
                ))
            }
        };
        Ok(Some(Self {
            account_sid,
            credentials,
            api_base,
            timeout,
        }))
    }
}

/// The account of a local emulator named by `TWILIO_API_BASE` alone: `AC` and 32 zeros, as in
/// Twilio's own examples.
pub const LOCAL_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";

/// The longest `TWILIO_REST_TIMEOUT`: a request that waits longer holds up the API call behind it
/// for nothing (Twilio answers within a second or two).
const MAX_TIMEOUT: Duration = Duration::from_secs(120);

/// `TWILIO_API_BASE`: `http(s)://host[:port][/prefix]`, no query, no credentials (they go in
/// the Basic header, and the value is not echoed); stored without a trailing `/`.
fn api_base<F: Fn(&str) -> Option<String>>(vars: &Vars<'_, F>) -> Result<String, ConfigError> {
    let value = vars
        .get("TWILIO_API_BASE")
        .unwrap_or_else(|| DEFAULT_API_BASE.to_owned());
    let base = value.trim_end_matches('/');
    let valid = base.parse::<awc::http::Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("https" | "http"))
            && uri.host().is_some_and(|host| !host.is_empty())
            && uri.query().is_none()
            && !base.contains(['#', '@'])
    });
    if !valid {
        return Err(vars.invalid(
            "TWILIO_API_BASE",
            format!(
                "expected https://host[:port] without credentials or query, e.g. \
                 {DEFAULT_API_BASE} (http:// for a local emulator)"
            ),
        ));
    }
    Ok(base.to_owned())
}

/// `TWILIO_API_KEY_SID` and `TWILIO_API_KEY_SECRET`: both or neither.
fn api_key<F: Fn(&str) -> Option<String>>(
    vars: &Vars<'_, F>,
) -> Result<Option<TwilioCredentials>, ConfigError> {
    match (
        vars.get("TWILIO_API_KEY_SID"),
        vars.get("TWILIO_API_KEY_SECRET"),
    ) {
        (Some(sid), Some(secret)) => {
            if !is_sid(&sid, "SK") {
                return Err(vars.invalid("TWILIO_API_KEY_SID", sid_expected("SK", &sid)));
            }
            Ok(Some(TwilioCredentials::ApiKey {
                sid,
                secret: Secret::new(secret),
            }))
        }
        (None, None) => Ok(None),
        (Some(_), None) => Err(vars.invalid(
            "TWILIO_API_KEY_SECRET",
            "required with TWILIO_API_KEY_SID".into(),
        )),
        (None, Some(_)) => Err(vars.invalid(
            "TWILIO_API_KEY_SID",
            "required with TWILIO_API_KEY_SECRET".into(),
        )),
    }
}

/// `prefix` followed by 32 hexadecimal digits, as Twilio issues SIDs.
fn is_sid(value: &str, prefix: &str) -> bool {
    value.len() == 34
        && value.starts_with(prefix)
        && value[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// What a SID should look like. The value itself is not repeated: a secret pasted into the wrong
/// variable must not reach the logs.
fn sid_expected(prefix: &str, value: &str) -> String {
    format!(
        "expected {prefix} followed by 32 hexadecimal digits, as in the Twilio console (got {} characters)",
        value.chars().count()
    )
}
