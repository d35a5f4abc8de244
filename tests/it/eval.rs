//! The turn-taking evaluation suite on a slice of its set, through a real server with the embedded
//! engines (the full set and both modes: `phone-agent eval`, figures in docs/benchmarks.md). The
//! floors are what the slice must never miss: a reply to every turn, no cut-in on digits dictated
//! with 1.5 s pauses, an interruption that stops the agent and a backchannel that does not.

use std::path::PathBuf;

use phone_agent::client::eval::{evaluate, EvalArgs};

#[actix_rt::test]
async fn a_slice_of_the_evaluation_set_meets_its_floors() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let args = EvalArgs {
        cases: root.join("tests/data/turn-eval/cases.tsv"),
        modes: vec!["smart-turn".into()],
        only: ["c01", "d01", "b01", "i01"].map(String::from).to_vec(),
        json: None,
        models_dir: crate::embedded::models_dir(),
    };
    let reports = evaluate(&args).await.unwrap();
    let report = &reports[0];
    let summary = phone_agent::client::eval::score::table(&reports);
    assert_eq!(report.cases.len(), 4, "{summary}");
    assert_eq!(report.replies_missing.hits, 0, "{summary}");
    assert_eq!(report.dictation_cut_ins.hits, 0, "{summary}");
    assert!(
        report.voice_to_voice_p50_ms.is_some_and(|ms| ms < 1_500),
        "{summary}"
    );
    assert_eq!(report.barge_in_recall.hits, 1, "{summary}");
    assert_eq!(report.false_interruptions.hits, 0, "{summary}");
    assert!(report.word_error_rate < 40.0, "{summary}");
}
