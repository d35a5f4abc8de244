//! Outbound webhooks and follow-up emails: where messages may go, how long attempts take and how
//! they are retried, and the email provider.

use super::vars::Vars;
use super::ConfigError;
use crate::email::resend::{Resend, ResendSettings, DEFAULT_BASE_URL};
use crate::webhooks::backoff::Backoff;
use crate::webhooks::dispatch::DispatchSettings;
use crate::webhooks::target::TargetPolicy;

/// Messages in flight at once in all, whatever the receivers.
const TOTAL_IN_FLIGHT: usize = 256;

/// `WEBHOOK_ALLOW_PRIVATE`, `WEBHOOK_TIMEOUT`, `WEBHOOK_RETRY_BASE`, `WEBHOOK_RETRY_WINDOW`,
/// `WEBHOOK_CONCURRENCY`, `RESEND_API_KEY`, `RESEND_API_BASE`, `FOLLOW_UP_FROM`, `FOLLOW_UP_TO`;
/// `https` targets only in `production`.
pub(super) fn from_vars<F: Fn(&str) -> Option<String>>(
    vars: &Vars<'_, F>,
    production: bool,
) -> Result<DispatchSettings, ConfigError> {
    let policy = TargetPolicy {
        allow_private: vars.parse("WEBHOOK_ALLOW_PRIVATE", "false", "true or false")?,
        require_https: production,
    };
    let email = match vars.get("RESEND_API_KEY") {
        None => None,
        Some(api_key) => {
            let from = vars.get("FOLLOW_UP_FROM").ok_or_else(|| {
                vars.invalid(
                    "FOLLOW_UP_FROM",
                    "required with RESEND_API_KEY: the sender, e.g. \"Acme <calls@acme.com>\""
                        .into(),
                )
            })?;
            let base_url = vars
                .get("RESEND_API_BASE")
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
            if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
                return Err(vars.invalid(
                    "RESEND_API_BASE",
                    format!("{base_url:?} (expected an http(s) URL)"),
                ));
            }
            let mut settings = ResendSettings::new(api_key, from);
            settings.base_url = base_url;
            Some(Resend::new(settings))
        }
    };
    let follow_up_to = vars.get("FOLLOW_UP_TO");
    if let Some(address) = &follow_up_to {
        if !address.contains('@') {
            return Err(vars.invalid(
                "FOLLOW_UP_TO",
                format!("{address:?} (expected an email address)"),
            ));
        }
    }
    Ok(DispatchSettings {
        policy,
        timeout: vars.duration("WEBHOOK_TIMEOUT", "10s")?,
        backoff: Backoff {
            base: vars.duration("WEBHOOK_RETRY_BASE", "5s")?,
            window: vars.duration("WEBHOOK_RETRY_WINDOW", "24h")?,
        },
        per_receiver: vars.bounded("WEBHOOK_CONCURRENCY", "4", 1..=64)?,
        total: TOTAL_IN_FLIGHT,
        email,
        follow_up_to,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<DispatchSettings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |name: &str| map.get(name).cloned();
        from_vars(&Vars(&lookup), false)
    }

    #[test]
    fn defaults_retry_for_a_day_and_refuse_private_targets() {
        let settings = settings(&[]).unwrap();
        assert!(!settings.policy.allow_private && !settings.policy.require_https);
        assert_eq!(settings.timeout, Duration::from_secs(10));
        assert_eq!(settings.backoff.window, Duration::from_secs(86_400));
        assert_eq!(settings.per_receiver, 4);
        assert!(settings.email.is_none());
    }

    #[test]
    fn an_email_provider_needs_a_sender_and_addresses_must_be_addresses() {
        let error = settings(&[("RESEND_API_KEY", "re_123")]).unwrap_err();
        assert_eq!(error.variable, "FOLLOW_UP_FROM");
        assert!(
            settings(&[("RESEND_API_KEY", "re_123"), ("FOLLOW_UP_FROM", "a@b.com")])
                .unwrap()
                .email
                .is_some()
        );
        assert_eq!(
            settings(&[("FOLLOW_UP_TO", "team")]).unwrap_err().variable,
            "FOLLOW_UP_TO"
        );
        let allowed = settings(&[("WEBHOOK_ALLOW_PRIVATE", "true")]).unwrap();
        assert!(allowed.policy.allow_private);
        assert!(settings(&[("WEBHOOK_ALLOW_PRIVATE", "yes")]).is_err());
    }
}
