//! What travels to and from Twilio's REST API, in Twilio's own names: the form bodies of the
//! Calls resource and the parts of its JSON answers we read.
//!
//! Reference: <https://www.twilio.com/docs/voice/api/call-resource> (create and update a call) and
//! <https://www.twilio.com/docs/usage/twilios-response> (the error body).

use serde::Deserialize;

use super::{CallUpdate, CreateCall};

/// A form body: `(name, value)` pairs in order; a name may repeat (`StatusCallbackEvent`).
pub(super) type Form = Vec<(&'static str, String)>;

/// The call events Twilio reports to `StatusCallback`: every one a call record needs.
const STATUS_CALLBACK_EVENTS: [&str; 4] = ["initiated", "ringing", "answered", "completed"];

/// `POST …/Calls.json`: `To`, `From`, `Url`, `StatusCallback` with `StatusCallbackMethod=POST` and
/// one `StatusCallbackEvent` per event, then the optional `MachineDetection` (with `AsyncAmd=true`
/// and `AsyncAmdStatusCallback` when asked) and `Timeout`.
pub(super) fn create_call_form(call: &CreateCall) -> Form {
    let mut form: Form = vec![
        ("To", call.to.clone()),
        ("From", call.from.clone()),
        ("Url", call.url.clone()),
        ("StatusCallback", call.status_callback.clone()),
        ("StatusCallbackMethod", "POST".to_owned()),
    ];
    form.extend(
        STATUS_CALLBACK_EVENTS
            .iter()
            .map(|event| ("StatusCallbackEvent", (*event).to_owned())),
    );
    if let Some(detection) = &call.machine_detection {
        form.push(("MachineDetection", detection.mode.as_str().to_owned()));
        if let Some(callback) = &detection.async_callback {
            form.push(("AsyncAmd", "true".to_owned()));
            form.push(("AsyncAmdStatusCallback", callback.clone()));
        }
    }
    if let Some(ring_timeout) = call.ring_timeout {
        form.push(("Timeout", ring_timeout.as_secs().to_string()));
    }
    form
}

/// `POST …/Calls/{Sid}.json`: `Status=completed`, `Status=canceled` or `Twiml`.
pub(super) fn update_call_form(update: &CallUpdate) -> Form {
    match update {
        CallUpdate::Hangup => vec![("Status", "completed".to_owned())],
        CallUpdate::Cancel => vec![("Status", "canceled".to_owned())],
        CallUpdate::Twiml(twiml) => vec![("Twiml", twiml.clone())],
    }
}

/// The fields of Twilio's Call resource that we read (the answer to a create).
#[derive(Debug, Deserialize)]
pub(super) struct CallResource {
    /// The call's SID, `CA…`.
    pub sid: String,
    /// `queued` for a new call, or a later status.
    pub status: String,
}

/// Twilio's error body, `{"code":21211,"message":"…","more_info":"…","status":400}`. Only the
/// code is read: the message may repeat a phone number.
#[derive(Debug, Deserialize)]
pub(super) struct ErrorBody {
    /// Twilio's error code (<https://www.twilio.com/docs/api/errors>).
    pub code: Option<u32>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::plain_call as call;
    use super::super::{AmdMode, MachineDetection};
    use super::*;

    fn names(form: &Form) -> Vec<&str> {
        form.iter().map(|(name, _)| *name).collect()
    }

    #[test]
    fn a_plain_create_names_the_webhooks_and_every_status_event() {
        let form = create_call_form(&call());
        assert_eq!(
            names(&form),
            [
                "To",
                "From",
                "Url",
                "StatusCallback",
                "StatusCallbackMethod",
                "StatusCallbackEvent",
                "StatusCallbackEvent",
                "StatusCallbackEvent",
                "StatusCallbackEvent",
            ]
        );
        let events: Vec<&str> = form[5..].iter().map(|(_, value)| value.as_str()).collect();
        assert_eq!(events, STATUS_CALLBACK_EVENTS);
    }

    #[test]
    fn detection_and_timeout_are_added_when_asked() {
        let synchronous = CreateCall {
            machine_detection: Some(MachineDetection {
                mode: AmdMode::Enable,
                async_callback: None,
            }),
            ..call()
        };
        let form = create_call_form(&synchronous);
        assert_eq!(form[9], ("MachineDetection", "Enable".to_owned()));
        assert_eq!(form.len(), 10);
        let asynchronous = CreateCall {
            machine_detection: Some(MachineDetection {
                mode: AmdMode::DetectMessageEnd,
                async_callback: Some("https://agent.example.com/twilio/amd".into()),
            }),
            ring_timeout: Some(Duration::from_secs(25)),
            ..call()
        };
        let form = create_call_form(&asynchronous);
        assert_eq!(
            form[9..],
            [
                ("MachineDetection", "DetectMessageEnd".to_owned()),
                ("AsyncAmd", "true".to_owned()),
                (
                    "AsyncAmdStatusCallback",
                    "https://agent.example.com/twilio/amd".to_owned()
                ),
                ("Timeout", "25".to_owned()),
            ]
        );
    }

    #[test]
    fn updates_set_the_status_or_the_twiml() {
        assert_eq!(
            update_call_form(&CallUpdate::Hangup),
            [("Status", "completed".to_owned())]
        );
        assert_eq!(
            update_call_form(&CallUpdate::Cancel),
            [("Status", "canceled".to_owned())]
        );
        assert_eq!(
            update_call_form(&CallUpdate::Twiml("<Response/>".into())),
            [("Twiml", "<Response/>".to_owned())]
        );
    }

    #[test]
    fn twilios_documented_answers_parse() {
        // The create answer of Twilio's own helper-library tests, trimmed.
        let call: CallResource = serde_json::from_str(
            r#"{"account_sid":"ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","answered_by":null,
            "api_version":"2010-04-01","date_created":"Tue, 31 Aug 2010 20:36:28 +0000",
            "direction":"outbound-api","from":"+14158675308","sid":"CAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "status":"queued","to":"+14158675309",
            "uri":"/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Calls/CAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json"}"#,
        )
        .unwrap();
        assert_eq!(call.sid, "CAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(call.status, "queued");
        let error: ErrorBody = serde_json::from_str(
            r#"{"code":21211,"message":"The 'To' number +1555 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#,
        )
        .unwrap();
        assert_eq!(error.code, Some(21211));
    }
}
