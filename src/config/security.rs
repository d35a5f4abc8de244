//! The security-related settings: storage, Twilio request validation, authentication, rate
//! limits, proxy trust, TLS.

use std::path::PathBuf;

use super::vars::Vars;
use super::ConfigError;
use crate::guard::auth::AuthSettings;
use crate::guard::client_ip::{ClientNetworks, IpList, ProxyTrust};
use crate::guard::penalty::PenaltySettings;
use crate::guard::rate_limit::{EndpointClass, Limit, RateLimitSettings};
use crate::redact::Secret;
use crate::webhooks::signature::WebhookKeys;

/// Where data lives and the key sealing it.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// The data directory: the SQLite file, the generated data key (`DATA_DIR`).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…` (`DATABASE_URL`; may carry a password, so it is secret).
    pub database_url: Secret,
    /// Base64 of the 32-byte data key (`DATA_KEY`); read from (or generated into) the key file
    /// if unset.
    pub data_key: Option<Secret>,
    /// The data key's file when `DATA_KEY` is unset (`DATA_KEY_FILE`): by default
    /// `DATA_DIR/data.key`, so a copy of the data directory holds the key to its sealed values;
    /// point it elsewhere (another volume, a secrets mount) to keep them apart.
    pub data_key_file: PathBuf,
    /// Keys that sealed before the current one and still open what they sealed
    /// (`DATA_KEY_PREVIOUS`: comma-separated base64), until `phone-agent rekey` has re-sealed it.
    pub previous_data_keys: Vec<Secret>,
}

/// The data key's file in `DATA_DIR` when neither `DATA_KEY` nor `DATA_KEY_FILE` is set.
pub const DATA_KEY_FILE: &str = "data.key";

impl StorageSettings {
    /// The SQLite default inside `data_dir`, with the data key's file beside it.
    pub fn in_dir(data_dir: PathBuf) -> Self {
        let url = format!("sqlite://{}", data_dir.join("phone-agent.db").display());
        Self {
            data_key_file: data_dir.join(DATA_KEY_FILE),
            data_dir,
            database_url: Secret::new(url),
            data_key: None,
            previous_data_keys: Vec::new(),
        }
    }
}

/// How Twilio's requests are checked.
#[derive(Debug, Clone)]
pub struct TwilioSettings {
    /// The account's auth token (`TWILIO_AUTH_TOKEN`); in development, when unset, one is
    /// generated into `DATA_DIR/twilio-auth-token` for the simulator.
    pub auth_token: Option<Secret>,
    /// Whether `X-Twilio-Signature` is checked (`TWILIO_VALIDATE`, true unless explicitly false).
    pub validate: bool,
}

/// Certificate and key files for in-process TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain (`TLS_CERT`).
    pub cert: PathBuf,
    /// PEM private key (`TLS_KEY`).
    pub key: PathBuf,
}

/// Everything in front of the handlers.
#[derive(Debug, Clone)]
pub struct SecuritySettings {
    /// `APP_ENV=production`: no generated Twilio auth token; loud warnings for generated keys.
    pub production: bool,
    /// Storage.
    pub storage: StorageSettings,
    /// Twilio request validation.
    pub twilio: TwilioSettings,
    /// Bearer-token authentication and lockout.
    pub auth: AuthSettings,
    /// Rate limits, blocks and IP lists.
    pub rate_limits: RateLimitSettings,
    /// Whether `Forwarded`/`X-Forwarded-For` are believed, through how many proxies
    /// (`TRUST_PROXY`).
    pub proxy_trust: ProxyTrust,
    /// How clients are told apart for limits and lockouts (`IPV6_CLIENT_PREFIX`).
    pub client_networks: ClientNetworks,
    /// In-process TLS, when both `TLS_CERT` and `TLS_KEY` are set.
    pub tls: Option<TlsFiles>,
    /// Inbound webhook secrets (`WEBHOOK_SECRET`, `SVIX_WEBHOOK_SECRET`).
    pub webhooks: WebhookKeys,
}

impl SecuritySettings {
    /// Every security variable; the first bad one stops start-up.
    pub(super) fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &Vars<'_, F>,
    ) -> Result<Self, ConfigError> {
        let production = match vars.get("APP_ENV").as_deref().unwrap_or("development") {
            "development" => false,
            "production" => true,
            other => {
                return Err(vars.invalid(
                    "APP_ENV",
                    format!("{other:?} (expected development or production)"),
                ))
            }
        };
        // Struct fields are evaluated in the order written: this is the order variables are checked in.
        Ok(Self {
            production,
            storage: StorageSettings::from_vars(vars)?,
            twilio: TwilioSettings::from_vars(vars, production)?,
            auth: AuthSettings::from_vars(vars)?,
            rate_limits: RateLimitSettings::from_vars(vars)?,
            proxy_trust: proxy_trust(vars)?,
            client_networks: ClientNetworks::new(vars.bounded(
                "IPV6_CLIENT_PREFIX",
                "64",
                1..=128,
            )?),
            tls: TlsFiles::from_vars(vars)?,
            webhooks: webhook_keys(vars)?,
        })
    }
}

/// `WEBHOOK_SECRET` (the product's own scheme) and `SVIX_WEBHOOK_SECRET` (Standard Webhooks,
/// `whsec_<base64>`); a scheme without its secret refuses every message.
fn webhook_keys<F: Fn(&str) -> Option<String>>(
    vars: &Vars<'_, F>,
) -> Result<WebhookKeys, ConfigError> {
    let resend = vars.get("WEBHOOK_SECRET").filter(|s| !s.is_empty());
    if resend.as_ref().is_some_and(|secret| secret.len() < 16) {
        return Err(vars.invalid(
            "WEBHOOK_SECRET",
            "too short (at least 16 characters; openssl rand -hex 32)".into(),
        ));
    }
    let standard = vars.get("SVIX_WEBHOOK_SECRET").filter(|s| !s.is_empty());
    WebhookKeys::new(resend.as_deref(), standard.as_deref()).map_err(|_| {
        vars.invalid(
            "SVIX_WEBHOOK_SECRET",
            "expected whsec_ followed by base64, as the provider shows it".into(),
        )
    })
}

impl StorageSettings {
    /// `DATA_DIR`, `DATABASE_URL`, `DATA_KEY`, `DATA_KEY_FILE`, `DATA_KEY_PREVIOUS`.
    fn from_vars<F: Fn(&str) -> Option<String>>(vars: &Vars<'_, F>) -> Result<Self, ConfigError> {
        let data_dir = PathBuf::from(vars.get("DATA_DIR").unwrap_or_else(|| "data".into()));
        let mut storage = Self::in_dir(data_dir);
        if let Some(url) = vars.get("DATABASE_URL") {
            if !["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
            {
                return Err(vars.invalid(
                    "DATABASE_URL",
                    "expected sqlite://path or postgres://user:password@host/db".into(),
                ));
            }
            storage.database_url = Secret::new(url);
        }
        let data_key = |name: &'static str, key: &str| {
            crate::store::crypto::DataKey::from_base64(key)
                .map(|_| Secret::new(key.trim()))
                .map_err(|_| {
                    vars.invalid(
                        name,
                        "expected base64 of 32 random bytes (openssl rand -base64 32)".into(),
                    )
                })
        };
        if let Some(key) = vars.get("DATA_KEY") {
            storage.data_key = Some(data_key("DATA_KEY", &key)?);
        }
        if let Some(file) = vars.get("DATA_KEY_FILE") {
            storage.data_key_file = PathBuf::from(file);
        }
        if let Some(keys) = vars.get("DATA_KEY_PREVIOUS") {
            storage.previous_data_keys = keys
                .split(',')
                .filter(|key| !key.trim().is_empty())
                .map(|key| data_key("DATA_KEY_PREVIOUS", key))
                .collect::<Result<_, _>>()?;
        }
        Ok(storage)
    }
}

impl TwilioSettings {
    /// `TWILIO_AUTH_TOKEN`, `TWILIO_VALIDATE`; in `production` a token is required while
    /// validation is on.
    fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &Vars<'_, F>,
        production: bool,
    ) -> Result<Self, ConfigError> {
        let twilio = Self {
            auth_token: vars.get("TWILIO_AUTH_TOKEN").map(Secret::new),
            validate: flag(vars, "TWILIO_VALIDATE", true)?,
        };
        if production && twilio.validate && twilio.auth_token.is_none() {
            return Err(vars.invalid(
                "TWILIO_AUTH_TOKEN",
                "required with APP_ENV=production (or TWILIO_VALIDATE=false, not recommended)"
                    .into(),
            ));
        }
        Ok(twilio)
    }
}

impl PenaltySettings {
    /// The four variables of a penalty box, `[strikes, window, block, block max]`, with their
    /// defaults; the longest block may not be shorter than the first.
    fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &Vars<'_, F>,
        names: [&'static str; 4],
        defaults: [&str; 4],
    ) -> Result<Self, ConfigError> {
        let settings = Self {
            threshold: vars.bounded(names[0], defaults[0], 1..=10_000)?,
            window: vars.duration(names[1], defaults[1])?,
            base: vars.duration(names[2], defaults[2])?,
            cap: vars.duration(names[3], defaults[3])?,
        };
        if settings.cap < settings.base {
            return Err(vars.invalid(names[3], format!("must be at least {}", names[2])));
        }
        Ok(settings)
    }
}

impl AuthSettings {
    /// `AUTH_LOCKOUT_*`, `AUTH_CACHE_REFRESH`, `AUDIT_FLUSH_INTERVAL`.
    fn from_vars<F: Fn(&str) -> Option<String>>(vars: &Vars<'_, F>) -> Result<Self, ConfigError> {
        Ok(Self {
            lockout: PenaltySettings::from_vars(
                vars,
                [
                    "AUTH_LOCKOUT_FAILURES",
                    "AUTH_LOCKOUT_WINDOW",
                    "AUTH_LOCKOUT",
                    "AUTH_LOCKOUT_MAX",
                ],
                ["10", "10m", "1m", "1h"],
            )?,
            cache_refresh: vars.duration("AUTH_CACHE_REFRESH", "30s")?,
            flush_interval: vars.duration("AUDIT_FLUSH_INTERVAL", "2s")?,
        })
    }
}

impl RateLimitSettings {
    /// `RATE_LIMIT_*` (the limit per class, then the blocks), `IP_ALLOW_LIST`, `IP_DENY_LIST`.
    fn from_vars<F: Fn(&str) -> Option<String>>(vars: &Vars<'_, F>) -> Result<Self, ConfigError> {
        let parse = |name: &'static str, text: &str| {
            Limit::parse(text).map_err(|message| vars.invalid(name, message))
        };
        let limit = |name: &'static str, default: &str| {
            parse(name, &vars.get(name).unwrap_or_else(|| default.to_owned()))
        };
        let list = |name: &'static str| {
            IpList::parse(&vars.get(name).unwrap_or_default())
                .map_err(|message| vars.invalid(name, message))
        };
        let limits = [
            limit("RATE_LIMIT_API_READ", "600/min")?,
            limit("RATE_LIMIT_API_WRITE", "60/min")?,
            limit("RATE_LIMIT_WEBHOOKS", "600/min")?,
            limit("RATE_LIMIT_TWILIO", "3000/min")?,
        ];
        // A token's limit defaults to its class's per-IP limit.
        let per_token = |name: &'static str, class: EndpointClass| match vars.get(name) {
            Some(value) => parse(name, &value),
            None => Ok(limits[class as usize]),
        };
        let mut token_limits = limits;
        token_limits[EndpointClass::ApiRead as usize] =
            per_token("RATE_LIMIT_TOKEN_API_READ", EndpointClass::ApiRead)?;
        token_limits[EndpointClass::ApiWrite as usize] =
            per_token("RATE_LIMIT_TOKEN_API_WRITE", EndpointClass::ApiWrite)?;
        Ok(Self {
            limits,
            token_limits,
            blocks: PenaltySettings::from_vars(
                vars,
                [
                    "RATE_LIMIT_STRIKES",
                    "RATE_LIMIT_STRIKE_WINDOW",
                    "RATE_LIMIT_BLOCK",
                    "RATE_LIMIT_BLOCK_MAX",
                ],
                ["20", "1m", "1m", "1h"],
            )?,
            allow: list("IP_ALLOW_LIST")?,
            deny: list("IP_DENY_LIST")?,
        })
    }
}

impl TlsFiles {
    /// `TLS_CERT` and `TLS_KEY`: both or neither.
    fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &Vars<'_, F>,
    ) -> Result<Option<Self>, ConfigError> {
        match (vars.get("TLS_CERT"), vars.get("TLS_KEY")) {
            (Some(cert), Some(key)) => Ok(Some(Self {
                cert: cert.into(),
                key: key.into(),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(vars.invalid("TLS_KEY", "required with TLS_CERT".into())),
            (None, Some(_)) => Err(vars.invalid("TLS_CERT", "required with TLS_KEY".into())),
        }
    }
}

/// `TRUST_PROXY`: `false` (the default), `true` (one proxy), or how many proxies are in front (1–10).
fn proxy_trust<F: Fn(&str) -> Option<String>>(
    vars: &Vars<'_, F>,
) -> Result<ProxyTrust, ConfigError> {
    const NAME: &str = "TRUST_PROXY";
    match vars.get(NAME).as_deref() {
        None | Some("false" | "off" | "0") => Ok(ProxyTrust::None),
        Some("true" | "on") => Ok(ProxyTrust::Proxies(1)),
        Some(other) => match other.parse::<u8>() {
            Ok(proxies @ 1..=10) => Ok(ProxyTrust::Proxies(proxies)),
            _ => Err(vars.invalid(
                NAME,
                format!("{other:?} (expected false, true, or the number of proxies, 1 to 10)"),
            )),
        },
    }
}

/// `true`/`false` (also `on`/`off`, `1`/`0`).
fn flag<F: Fn(&str) -> Option<String>>(
    vars: &Vars<'_, F>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match vars.get(name).as_deref() {
        None => Ok(default),
        Some("true" | "on" | "1") => Ok(true),
        Some("false" | "off" | "0") => Ok(false),
        Some(other) => Err(vars.invalid(name, format!("{other:?} (expected true or false)"))),
    }
}
