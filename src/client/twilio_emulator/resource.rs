//! The call resource as Twilio's REST API returns it (<https://www.twilio.com/docs/voice/api/call-resource>):
//! snake_case fields, dates in RFC 2822, the duration as a string of seconds, `null` for what
//! the emulator does not know (prices, caller names, phone number sids).

use serde_json::{json, Value};

use super::call::{CallRecord, API_VERSION, DIRECTION};
use super::clock::rfc2822;

/// The path of a call's resource.
pub fn call_uri(account_sid: &str, call_sid: &str) -> String {
    format!("/{API_VERSION}/Accounts/{account_sid}/Calls/{call_sid}.json")
}

/// The JSON of `record`.
pub fn call_json(record: &CallRecord) -> Value {
    let uri = call_uri(&record.account_sid, &record.sid);
    let base = uri.trim_end_matches(".json");
    let subresource = |name: &str| format!("{base}/{name}.json");
    json!({
        "account_sid": record.account_sid,
        "annotation": null,
        "answered_by": record.answered_by,
        "api_version": API_VERSION,
        "caller_name": null,
        "date_created": rfc2822(record.created),
        "date_updated": rfc2822(record.updated),
        "direction": DIRECTION,
        "duration": record.duration.map(|seconds| seconds.to_string()),
        "end_time": record.ended.map(rfc2822),
        "forwarded_from": null,
        "from": record.from,
        "from_formatted": record.from,
        "group_sid": null,
        "parent_call_sid": null,
        "phone_number_sid": null,
        "price": null,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": record.sid,
        "start_time": record.started.map(rfc2822),
        "status": record.status.as_str(),
        "subresource_uris": {
            "events": subresource("Events"),
            "notifications": subresource("Notifications"),
            "payments": subresource("Payments"),
            "recordings": subresource("Recordings"),
            "siprec": subresource("Siprec"),
            "streams": subresource("Streams"),
            "transcriptions": subresource("Transcriptions"),
            "user_defined_message_subscriptions": subresource("UserDefinedMessageSubscriptions"),
            "user_defined_messages": subresource("UserDefinedMessages"),
        },
        "to": record.to,
        "to_formatted": record.to,
        "trunk_sid": null,
        "uri": uri,
    })
}
