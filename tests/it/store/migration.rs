//! Calls recorded under migration 0001 (keyed by CallSid, numbers sealed for
//! `calls.from_number:{call_sid}`, Twilio's raw direction and status) come through 0002 with
//! their CallSid as id, their numbers readable and room for what 0002 adds.

use std::borrow::Cow;
use std::path::Path;

use phone_agent::store::call_list::{CallFilter, CallPage};
use phone_agent::store::calls::Direction;
use phone_agent::store::status::CallStatus;
use sqlx::migrate::Migrator;

use super::{key, open, postgres};

#[actix_rt::test]
async fn calls_recorded_before_ids_survive_the_migration_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/old.db?mode=rwc", dir.path().display());
    calls_recorded_before_ids_survive_the_migration(&url).await;
}

#[actix_rt::test]
async fn calls_recorded_before_ids_survive_the_migration_on_postgresql() {
    let Some(postgres) = postgres() else { return };
    calls_recorded_before_ids_survive_the_migration(&postgres.url()).await;
}

async fn calls_recorded_before_ids_survive_the_migration(url: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let mut first = Migrator::new(Path::new("src/store/migrations"))
        .await
        .unwrap();
    first.migrations = Cow::Owned(first.migrations[..1].to_vec());
    first.run(&pool).await.unwrap();
    let key = key();
    for (sid, direction, status, at) in [
        ("CAold1", "outbound-api", "in-progress", 1_000_i64),
        ("CAold2", "inbound", "initiated", 2_000),
    ] {
        sqlx::query(
            "INSERT INTO calls (call_sid, direction, from_number, to_number, status, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(sid)
        .bind(direction)
        .bind(
            key.seal("+14155550100", &format!("calls.from_number:{sid}"))
                .unwrap(),
        )
        .bind(
            key.seal("+14155550199", &format!("calls.to_number:{sid}"))
                .unwrap(),
        )
        .bind(status)
        .bind(at)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = open(url).await;
    let old = store.call("CAold1").await.unwrap().unwrap();
    assert_eq!(old.id, "CAold1");
    assert_eq!(old.call_sid.as_deref(), Some("CAold1"));
    assert_eq!(old.from.as_deref(), Some("+14155550100"));
    assert_eq!(old.to.as_deref(), Some("+14155550199"));
    assert_eq!(old.direction, Direction::Outbound);
    assert_eq!(old.status, CallStatus::InProgress);
    assert_eq!((old.created_at, old.started_at), (1_000, Some(1_000)));
    let odd = store.call("CAold2").await.unwrap().unwrap();
    assert_eq!(
        odd.status,
        CallStatus::Queued,
        "a status we do not know starts the timeline"
    );

    assert!(store
        .apply_status("CAold1", CallStatus::Ringing, None, 3_000)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .apply_status("CAold1", CallStatus::Completed, None, 3_000)
        .await
        .unwrap()
        .is_some());
    let events = store.events_after("CAold1", 0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, 1, "the log starts at 1 for old calls too");
    let listed = store
        .calls(
            &CallFilter::default(),
            CallPage {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|call| call.id.as_str())
            .collect::<Vec<_>>(),
        ["CAold2", "CAold1"]
    );
}
