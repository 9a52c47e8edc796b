use chrono::TimeZone;

use super::*;

fn target() -> ExportTarget {
    "https://s3.stadt-musterhausen.de/exporte/impfzentrum/"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .unwrap_or_default()
}

fn succeeded(job: &str, written: &str, read_back: &str, bytes: u64) -> ExportObservation {
    ExportObservation {
        job: job.into(),
        status: ExportStatus::Succeeded,
        sums: Some(ExportSums {
            sha256: written.into(),
            read_back_sha256: read_back.into(),
            bytes,
        }),
        message: None,
    }
}

#[test]
fn patterns_compile() {
    for p in [&ENDPOINT, &BUCKET, &PREFIX, &SHA256] {
        assert!(p.compiles(), "{}", p.source());
    }
}

#[test]
fn a_target_reads_from_one_address() {
    let t = target();
    assert_eq!(t.endpoint, "https://s3.stadt-musterhausen.de");
    assert_eq!(t.bucket, "exporte");
    assert_eq!(t.prefix, "impfzentrum/");
    assert_eq!(
        t.url(),
        "https://s3.stadt-musterhausen.de/exporte/impfzentrum/"
    );
    let bare: ExportTarget = "https://minio.local:9000/bucket"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((bare.bucket.as_str(), bare.prefix.as_str()), ("bucket", ""));
    let no_slash: ExportTarget = "https://h.de/b-1/a/b"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(no_slash.prefix, "a/b/");
    for bad in [
        "http://s3.example.de/bucket",
        "https://user:pw@s3.example.de/bucket",
        "https://s3.example.de",
        "https://s3.example.de/Bucket",
        "https://s3.example.de/bucket/../etc/",
        "https://s3.example.de/bucket/a//b/",
        "https://s3.example.de/bucket/?x=1",
        "https://s3.example.de/ab",
    ] {
        assert!(bad.parse::<ExportTarget>().is_err(), "{bad}");
    }
}

#[test]
fn an_end_date_is_today_or_later_and_within_five_years() {
    let now = utc(2027, 3, 1, 10);
    assert!(check_ends_on("/e", day(2027, 3, 1), now).is_ok());
    assert!(check_ends_on("/e", day(2027, 2, 28), now).is_err());
    assert!(check_ends_on("/e", day(2033, 3, 1), now).is_err());
    // 23:30 UTC on 28 February is already 1 March in Germany.
    assert!(check_ends_on("/e", day(2027, 2, 28), utc(2027, 2, 28, 23)).is_err());
}

#[test]
fn the_end_is_midnight_german_time_after_the_last_day() {
    // Summer time: 00:00 CEST is 22:00 UTC the day before.
    assert_eq!(end_at(day(2027, 6, 30)), utc(2027, 6, 30, 22));
    assert_eq!(end_at(day(2027, 1, 31)), utc(2027, 1, 31, 23));
    assert_eq!(remind_at(day(2027, 1, 31)), utc(2027, 1, 17, 23));
}

#[test]
fn the_sweep_reminds_once_then_ends() {
    let mut ending = Ending::of(&EndingSpec {
        ends_on: day(2027, 6, 30),
        export_to: target(),
    });
    assert_eq!(due_step(&ending, utc(2027, 6, 1, 12)), None);
    assert_eq!(next_due(&ending), Some(remind_at(ending.ends_on)));
    assert_eq!(
        due_step(&ending, utc(2027, 6, 20, 12)),
        Some(EndingStep::Remind)
    );
    ending.reminded_at = Some(utc(2027, 6, 20, 12));
    assert_eq!(due_step(&ending, utc(2027, 6, 21, 12)), None);
    assert_eq!(next_due(&ending), Some(end_at(ending.ends_on)));
    assert_eq!(due_step(&ending, utc(2027, 6, 30, 21)), None);
    assert_eq!(
        due_step(&ending, utc(2027, 6, 30, 22)),
        Some(EndingStep::End)
    );
    // A booking that ends before it was ever reminded ends (the reminder is moot).
    let mut late = ending.clone();
    late.reminded_at = None;
    assert_eq!(due_step(&late, utc(2027, 7, 2, 0)), Some(EndingStep::End));
    ending.export = Some(ExportRun::first(
        "b-1",
        &ending.export_to,
        utc(2027, 7, 1, 0),
    ));
    assert_eq!(due_step(&ending, utc(2027, 7, 2, 0)), None);
    assert_eq!(next_due(&ending), None);
}

#[test]
fn each_attempt_has_its_job_and_object() {
    let t = target();
    let first = ExportRun::first("b-1", &t, utc(2027, 7, 1, 8));
    assert_eq!(first.job(), "data-export-1");
    assert_eq!(first.object, "impfzentrum/b-1/2027-07-01-1.tar.gz");
    assert!(
        first.retry("b-1", &t, utc(2027, 7, 1, 9)).is_err(),
        "running"
    );
    let failed = ExportRun {
        outcome: ExportOutcome::Failed {
            reason: "x".into(),
            at: utc(2027, 7, 1, 9),
        },
        ..first
    };
    let second = failed
        .retry("b-1", &t, utc(2027, 7, 2, 9))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.job(), "data-export-2");
    assert_eq!(second.object, "impfzentrum/b-1/2027-07-02-2.tar.gz");
    assert!(second.is_running());
    let last = ExportRun {
        attempt: MAX_ATTEMPTS,
        ..failed
    };
    assert!(last.retry("b-1", &t, utc(2027, 7, 3, 9)).is_err());
}

#[test]
fn only_a_succeeded_job_with_agreeing_checksums_is_verified() {
    let run = ExportRun::first("b-1", &target(), utc(2027, 7, 1, 0));
    let a = "a".repeat(64);
    let b = "b".repeat(64);
    assert_eq!(judge_export(&run, None), ExportVerdict::Pending);
    assert_eq!(
        judge_export(&run, Some(&succeeded("data-export-0", &a, &a, 10))),
        ExportVerdict::Pending,
        "another attempt's Job"
    );
    let running = ExportObservation {
        status: ExportStatus::Running,
        sums: None,
        ..succeeded("data-export-1", &a, &a, 1)
    };
    assert_eq!(judge_export(&run, Some(&running)), ExportVerdict::Pending);
    assert_eq!(
        judge_export(&run, Some(&succeeded("data-export-1", &a, &a, 10))),
        ExportVerdict::Verified {
            sha256: a.clone(),
            bytes: 10
        }
    );
    for (obs, says) in [
        (succeeded("data-export-1", &a, &b, 10), "read back"),
        (succeeded("data-export-1", &a, &a, 0), "0 bytes"),
        (
            ExportObservation {
                sums: None,
                ..succeeded("data-export-1", &a, &a, 1)
            },
            "no checksums",
        ),
        (
            ExportObservation {
                status: ExportStatus::Failed,
                sums: None,
                message: Some("AccessDenied".into()),
                ..succeeded("data-export-1", &a, &a, 1)
            },
            "failed: AccessDenied",
        ),
    ] {
        match judge_export(&run, Some(&obs)) {
            ExportVerdict::Failed(reason) => assert!(reason.contains(says), "{reason}"),
            other => panic!("{obs:?}: {other:?}"),
        }
    }
}

#[test]
fn an_observation_checks_its_form() {
    let a = "a".repeat(64);
    assert!(succeeded("data-export-1", &a, &a, 1)
        .validate("/export")
        .is_ok());
    let e = succeeded("data-export-1", &a.to_uppercase(), &a, 1)
        .validate("/export")
        .unwrap_err();
    assert_eq!(e.field, "/export/sums/sha256");
    assert!(succeeded("Data Export", &a, &a, 1)
        .validate("/export")
        .is_err());
}
