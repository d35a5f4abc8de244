//! `phone-agent rekey`: re-seals everything in the configured store under `DATA_KEY` (or its
//! file), opening what older keys sealed with `DATA_KEY_PREVIOUS` ([`crate::store::rekey`]).
//! Prints what it changed and records it in the audit trail; servers may keep running.

use std::process::ExitCode;

use crate::store::audit::AuditEvent;
use crate::store::now_ms;
use crate::store::rekey::RekeyReport;

/// Runs `rekey`.
pub fn run() -> ExitCode {
    super::on_store(async |store| {
        let started = now_ms();
        let outcome = match store.rekey().await {
            Ok(report) => {
                let audit = AuditEvent {
                    at: started,
                    kind: "data.rekeyed".into(),
                    token_id: None,
                    client: None,
                    detail: describe(&report),
                    count: 1,
                };
                store.append_audit(&[audit]).await.map(|()| report)
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(report) => {
                println!("{}", describe(&report));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!(
                    "phone-agent: rekey stopped (what it re-sealed so far stays re-sealed; run it \
                     again once fixed): {error}"
                );
                ExitCode::FAILURE
            }
        }
    })
}

/// One line: every column's count, then the totals.
fn describe(report: &RekeyReport) -> String {
    let mut parts: Vec<String> = report
        .resealed
        .iter()
        .map(|(column, n)| format!("{column}={n}"))
        .collect();
    parts.push(format!("dnc_numbers.number_hash={}", report.dnc_moved));
    parts.push(format!(
        "webhook_deliveries.receiver={}",
        report.receivers_moved
    ));
    format!("re-sealed {} values: {}", report.total(), parts.join(" "))
}
