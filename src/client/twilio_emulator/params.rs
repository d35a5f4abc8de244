//! The parameters of a call's create and update requests, checked as Twilio checks them: form
//! fields by Twilio's names (repeated for lists), E.164 numbers, owned caller ids, one source of
//! instructions, known events and detection modes, bounded timeouts. The first problem found is
//! the answer, in Twilio's order (`To`, `From`, instructions, the rest). Unknown fields are
//! ignored, as Twilio ignores them.

use std::time::Duration;

use super::error::{
    ApiError, DOCUMENT_PARSE_FAILURE, FROM_MISSING, FROM_NOT_OWNED, INVALID_FROM,
    INVALID_PARAMETER, INVALID_TO, INVALID_URL, TO_MISSING,
};
use super::twiml;

/// The longest `Twiml` Twilio accepts, in characters.
pub const TWIML_LIMIT: usize = 4000;
/// `Timeout` when none is given, and the longest allowed.
const DEFAULT_TIMEOUT_S: u64 = 60;
const MAX_TIMEOUT_S: u64 = 600;
/// `TimeLimit` when none is given (four hours), and the longest allowed (a day).
const DEFAULT_TIME_LIMIT_S: u64 = 4 * 3600;
const MAX_TIME_LIMIT_S: u64 = 24 * 3600;

/// Where a call's instructions come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instructions {
    /// Fetch TwiML from this URL (POST).
    Url(String),
    /// Run this TwiML.
    Twiml(String),
}

/// A status callback event a call can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Dialling started.
    Initiated,
    /// The phone rings.
    Ringing,
    /// The call was answered.
    Answered,
    /// The call ended, however it ended.
    Completed,
}

impl Event {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "initiated" => Self::Initiated,
            "ringing" => Self::Ringing,
            "answered" => Self::Answered,
            "completed" => Self::Completed,
            _ => return None,
        })
    }
}

/// Answering-machine detection as requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// `Enable`: decide as soon as possible (`machine_start`).
    Enable,
    /// `DetectMessageEnd`: wait for the machine's greeting to end (`machine_end_beep`).
    DetectMessageEnd,
}

/// A valid create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCall {
    /// The callee, E.164.
    pub to: String,
    /// The caller id, E.164 and owned.
    pub from: String,
    /// What to run once answered.
    pub instructions: Instructions,
    /// Where status callbacks go.
    pub status_callback: Option<String>,
    /// The subscribed events (`completed` alone by default).
    pub events: Vec<Event>,
    /// How long to ring before giving up (no-answer).
    pub timeout: Duration,
    /// The longest the call may last once answered.
    pub time_limit: Duration,
    /// Answering-machine detection, if requested.
    pub detection: Option<Detection>,
    /// With asynchronous detection: where its verdict goes (the TwiML runs at once).
    pub async_amd_callback: Option<String>,
}

/// A valid update request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallUpdate {
    /// `Status=completed`: hang up, whatever the call's state.
    Hangup,
    /// `Status=canceled`: hang up a call that is not answered yet.
    Cancel,
    /// `Url` or `Twiml`: run these instructions instead.
    Redirect(Instructions),
    /// Nothing to change.
    Nothing,
}

/// A form's fields, in order.
type Form = [(String, String)];

/// Checks a create request; `owned` are the numbers calls may come from (any when `None`).
pub fn new_call(form: &Form, owned: Option<&[String]>) -> Result<NewCall, ApiError> {
    let to = single(form, "To")
        .ok_or_else(|| ApiError::bad_request(TO_MISSING, "A 'To' phone number is required."))?;
    if !is_e164(to) {
        return Err(ApiError::bad_request(
            INVALID_TO,
            format!("The 'To' number {to} is not a valid phone number."),
        ));
    }
    let from = single(form, "From")
        .ok_or_else(|| ApiError::bad_request(FROM_MISSING, "A 'From' phone number is required."))?;
    if !is_e164(from) {
        return Err(ApiError::bad_request(
            INVALID_FROM,
            format!("The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."),
        ));
    }
    if owned.is_some_and(|owned| !owned.iter().any(|number| number == from)) {
        return Err(ApiError::bad_request(
            FROM_NOT_OWNED,
            format!("The source phone number provided, {from}, is not yet verified for your account. You may only make calls from phone numbers that you've verified or purchased from Twilio."),
        ));
    }
    let instructions = instructions(form)?.ok_or_else(|| {
        ApiError::bad_request(
            INVALID_URL,
            "Either a 'Url' or 'Twiml' parameter is required.",
        )
    })?;
    post_only(form, "Method")?;
    post_only(form, "StatusCallbackMethod")?;
    post_only(form, "AsyncAmdStatusCallbackMethod")?;
    let status_callback = optional_url(form, "StatusCallback")?;
    let events = events(form)?;
    let timeout = seconds(form, "Timeout", DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S)?;
    let time_limit = seconds(form, "TimeLimit", DEFAULT_TIME_LIMIT_S, MAX_TIME_LIMIT_S)?;
    let detection = match single(form, "MachineDetection") {
        None => None,
        Some("Enable") => Some(Detection::Enable),
        Some("DetectMessageEnd") => Some(Detection::DetectMessageEnd),
        Some(other) => {
            return Err(invalid(format!(
                "MachineDetection must be Enable or DetectMessageEnd, not {other:?}"
            )))
        }
    };
    let async_amd = match single(form, "AsyncAmd") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(invalid(format!(
                "AsyncAmd must be true or false, not {other:?}"
            )))
        }
    };
    let async_amd_callback = optional_url(form, "AsyncAmdStatusCallback")?;
    if async_amd && (detection.is_none() || async_amd_callback.is_none()) {
        return Err(invalid(
            "AsyncAmd needs MachineDetection and an AsyncAmdStatusCallback",
        ));
    }
    Ok(NewCall {
        to: to.to_owned(),
        from: from.to_owned(),
        instructions,
        status_callback,
        events,
        timeout,
        time_limit,
        detection,
        async_amd_callback: async_amd_callback.filter(|_| async_amd),
    })
}

/// Checks an update request.
pub fn update(form: &Form) -> Result<CallUpdate, ApiError> {
    post_only(form, "Method")?;
    let status = match single(form, "Status") {
        None => None,
        Some("completed") => Some(CallUpdate::Hangup),
        Some("canceled") => Some(CallUpdate::Cancel),
        Some(other) => {
            return Err(invalid(format!(
                "Status must be completed or canceled, not {other:?}"
            )))
        }
    };
    // A status ends the call: new instructions alongside it would never run.
    Ok(match (status, instructions(form)?) {
        (Some(status), _) => status,
        (None, Some(instructions)) => CallUpdate::Redirect(instructions),
        (None, None) => CallUpdate::Nothing,
    })
}

/// `Url` or `Twiml`, never both.
fn instructions(form: &Form) -> Result<Option<Instructions>, ApiError> {
    match (single(form, "Url"), single(form, "Twiml")) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            INVALID_URL,
            "Give either a 'Url' or a 'Twiml' parameter, not both.",
        )),
        (Some(url), None) => {
            if !is_http_url(url) {
                return Err(ApiError::bad_request(
                    INVALID_URL,
                    format!("Url is not a valid URL: {url}"),
                ));
            }
            Ok(Some(Instructions::Url(url.to_owned())))
        }
        (None, Some(document)) => {
            if document.chars().count() > TWIML_LIMIT {
                return Err(invalid(format!(
                    "Twiml is longer than {TWIML_LIMIT} characters"
                )));
            }
            twiml::parse(document).map_err(|error| {
                ApiError::bad_request(DOCUMENT_PARSE_FAILURE, format!("Twiml: {error}"))
            })?;
            Ok(Some(Instructions::Twiml(document.to_owned())))
        }
        (None, None) => Ok(None),
    }
}

/// The subscribed events: each `StatusCallbackEvent` value one event; `completed` alone when
/// none is given.
fn events(form: &Form) -> Result<Vec<Event>, ApiError> {
    let mut events = Vec::new();
    for value in all(form, "StatusCallbackEvent") {
        let event = Event::parse(value).ok_or_else(|| {
            invalid(format!(
                "StatusCallbackEvent must be initiated, ringing, answered or completed, not {value:?}"
            ))
        })?;
        if !events.contains(&event) {
            events.push(event);
        }
    }
    if events.is_empty() {
        events.push(Event::Completed);
    }
    Ok(events)
}

/// A whole number of seconds in `1..=max`, `default` when absent.
fn seconds(form: &Form, name: &str, default: u64, max: u64) -> Result<Duration, ApiError> {
    let Some(value) = single(form, name) else {
        return Ok(Duration::from_secs(default));
    };
    match value.parse::<u64>() {
        Ok(seconds) if (1..=max).contains(&seconds) => Ok(Duration::from_secs(seconds)),
        _ => Err(invalid(format!(
            "{name} must be a whole number of seconds from 1 to {max}, not {value:?}"
        ))),
    }
}

/// The emulator fetches and calls back with `POST` only.
fn post_only(form: &Form, name: &str) -> Result<(), ApiError> {
    match single(form, name) {
        None => Ok(()),
        Some(method) if method.eq_ignore_ascii_case("POST") => Ok(()),
        Some(method) => Err(invalid(format!(
            "{name} {method:?}: the emulator requests with POST only"
        ))),
    }
}

fn optional_url(form: &Form, name: &str) -> Result<Option<String>, ApiError> {
    match single(form, name) {
        None => Ok(None),
        Some(url) if is_http_url(url) => Ok(Some(url.to_owned())),
        Some(url) => Err(invalid(format!("{name} is not a valid URL: {url}"))),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(INVALID_PARAMETER, message)
}

/// The first non-empty value of `name`.
fn single<'a>(form: &'a Form, name: &str) -> Option<&'a str> {
    all(form, name).next()
}

/// Every non-empty value of `name` (an empty value counts as absent, as in Twilio's API).
fn all<'a, 'n>(form: &'a Form, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
    form.iter()
        .filter(move |(key, value)| key == name && !value.is_empty())
        .map(|(_, value)| value.as_str())
}

/// `+`, a non-zero digit, then 7 to 14 more digits: 8 to 15 digits in all.
pub fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// An absolute `http://` or `https://` URL with a host.
fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty() && !rest.contains(char::is_whitespace)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const VALID: &[(&str, &str)] = &[
        ("To", "+14155550100"),
        ("From", "+14155550199"),
        ("Url", "https://agent.test/twilio/voice"),
    ];

    fn code(pairs: &[(&str, &str)]) -> u32 {
        new_call(&form(pairs), None).unwrap_err().code
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        VALID.iter().chain(extra).copied().collect()
    }

    #[test]
    fn a_minimal_call_gets_twilios_defaults() {
        let call = new_call(&form(VALID), None).unwrap();
        assert_eq!(call.events, vec![Event::Completed]);
        assert_eq!(call.timeout, Duration::from_secs(60));
        assert_eq!(call.detection, None);
        assert_eq!(
            call.instructions,
            Instructions::Url("https://agent.test/twilio/voice".into())
        );
    }

    #[test]
    fn numbers_are_e164() {
        assert!(is_e164("+14155550100"));
        assert!(is_e164("+4930123456"));
        for bad in [
            "14155550100",
            "+1415",
            "+0415555010",
            "+1 415 555 0100",
            "+1234567890123456",
            "",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn to_and_from_are_checked_first_with_twilios_codes() {
        assert_eq!(code(&[("From", "+14155550199")]), TO_MISSING);
        assert_eq!(
            code(&[("To", "555-0100"), ("From", "+14155550199")]),
            INVALID_TO
        );
        assert_eq!(code(&[("To", "+14155550100")]), FROM_MISSING);
        assert_eq!(
            code(&[("To", "+14155550100"), ("From", "Bob")]),
            INVALID_FROM
        );
        let owned = ["+14155550111".to_owned()];
        assert_eq!(
            new_call(&form(VALID), Some(&owned)).unwrap_err().code,
            FROM_NOT_OWNED
        );
    }

    #[test]
    fn exactly_one_source_of_instructions() {
        assert_eq!(code(&VALID[..2]), INVALID_URL);
        assert_eq!(code(&with(&[("Twiml", "<Response/>")])), INVALID_URL);
        assert_eq!(
            code(&[
                ("To", "+14155550100"),
                ("From", "+14155550199"),
                ("Url", "/voice")
            ]),
            INVALID_URL
        );
        let twiml = [
            ("To", "+14155550100"),
            ("From", "+14155550199"),
            ("Twiml", "<Response>"),
        ];
        assert_eq!(code(&twiml), DOCUMENT_PARSE_FAILURE);
    }

    #[test]
    fn events_detection_and_timeouts_are_checked() {
        let call = new_call(
            &form(&with(&[
                ("StatusCallback", "https://agent.test/twilio/status"),
                ("StatusCallbackEvent", "initiated"),
                ("StatusCallbackEvent", "answered"),
                ("MachineDetection", "DetectMessageEnd"),
                ("Timeout", "600"),
            ])),
            None,
        )
        .unwrap();
        assert_eq!(call.events, vec![Event::Initiated, Event::Answered]);
        assert_eq!(call.detection, Some(Detection::DetectMessageEnd));
        assert_eq!(call.timeout, Duration::from_secs(600));
        for extra in [
            ("StatusCallbackEvent", "initiated ringing"),
            ("StatusCallbackEvent", "in-progress"),
            ("MachineDetection", "enable"),
            ("Timeout", "0"),
            ("Timeout", "601"),
            ("Timeout", "ten"),
            ("AsyncAmd", "true"),
            ("StatusCallback", "ftp://x"),
            ("Method", "GET"),
        ] {
            assert_eq!(code(&with(&[extra])), INVALID_PARAMETER, "{extra:?}");
        }
    }

    #[test]
    fn async_detection_needs_its_callback() {
        let call = new_call(
            &form(&with(&[
                ("MachineDetection", "Enable"),
                ("AsyncAmd", "true"),
                ("AsyncAmdStatusCallback", "https://agent.test/twilio/amd"),
            ])),
            None,
        )
        .unwrap();
        assert_eq!(
            call.async_amd_callback.as_deref(),
            Some("https://agent.test/twilio/amd")
        );
    }

    #[test]
    fn updates_hang_up_cancel_or_redirect() {
        assert_eq!(
            update(&form(&[("Status", "completed")])),
            Ok(CallUpdate::Hangup)
        );
        assert_eq!(
            update(&form(&[("Status", "canceled")])),
            Ok(CallUpdate::Cancel)
        );
        let transfer = "<Response><Dial>+14155550123</Dial></Response>";
        assert_eq!(
            update(&form(&[("Twiml", transfer)])),
            Ok(CallUpdate::Redirect(Instructions::Twiml(transfer.into())))
        );
        assert_eq!(update(&form(&[])), Ok(CallUpdate::Nothing));
        assert_eq!(
            update(&form(&[("Status", "busy")])).unwrap_err().code,
            INVALID_PARAMETER
        );
    }
}
