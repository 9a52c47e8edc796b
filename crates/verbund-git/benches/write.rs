//! Write performance of the desired-state repository at the design scale (100,000
//! bookings in 60 site folders; `VERBUND_BENCH_BOOKINGS` scales it): a cold write of
//! everything in one commit, a one-booking change, and the unchanged check by folder
//! names. Besides criterion's figures it prints median and p99 of the one-booking change.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod data;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use verbund_git::{folder_oid, Author, DesiredStateRepo, Oid};

fn author() -> Author {
    Author {
        name: "bench".into(),
        email: "bench@example.org".into(),
    }
}

/// Writes everything into an empty repository at `dir` in one commit.
fn cold(dir: &std::path::Path, total: usize) -> DesiredStateRepo {
    let repo = DesiredStateRepo::open_or_init(dir).unwrap();
    let mut change = repo.change().unwrap();
    for site in 0..data::SITES {
        change
            .put_folder(&data::site_folder(site), data::site_files(site, total))
            .unwrap();
    }
    change.commit(&author(), "cold", &[1]).unwrap().unwrap();
    repo
}

/// Replaces one booking folder and the site's kustomization; returns the commit time.
fn one_booking(repo: &DesiredStateRepo, total: usize, round: usize) -> Duration {
    let site = round % data::SITES;
    let range = data::site_bookings(site, total);
    let booking = range.start + (round * 7919) % range.len().max(1);
    let files = data::booking_files(site, booking, round + 1);
    let kustomization = data::site_kustomization(site, range, round + 1);
    let folder = format!("{}/bookings/ns-{booking:06}", data::site_folder(site));
    let started = Instant::now();
    let mut change = repo.change().unwrap();
    change.put_folder(&folder, files).unwrap();
    change
        .put_file(&kustomization.path, Some(&kustomization.content))
        .unwrap();
    change
        .commit(&author(), "one booking", &[round as i64])
        .unwrap()
        .unwrap();
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let total = data::bookings();
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();

    let mut group = c.benchmark_group("write");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    group.bench_function(format!("cold_{total}_bookings"), |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                let dir = scratch.path().join("cold");
                let started = Instant::now();
                let repo = cold(&dir, total);
                spent += started.elapsed();
                drop(repo);
                std::fs::remove_dir_all(&dir).unwrap();
            }
            spent
        })
    });

    let dir = scratch.path().join("repo");
    let repo = cold(&dir, total);
    let mut round = 0;
    let mut times: Vec<Duration> = (0..500)
        .map(|_| {
            round += 1;
            one_booking(&repo, total, round)
        })
        .collect();
    times.sort();
    println!(
        "one booking + site kustomization, 500 commits: median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() * 99 / 100].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    );
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("one_booking_commit", |b| {
        b.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| {
                    round += 1;
                    one_booking(&repo, total, round)
                })
                .sum()
        })
    });

    // The state as committed by now: the cold files with the latest booking versions.
    let expected: Vec<(String, Vec<verbund_git::RenderedFile>)> = (0..data::SITES)
        .map(|site| {
            let folder = data::site_folder(site);
            let mut change_files = Vec::new();
            for path_file in git_files(&repo, &folder) {
                change_files.push(path_file);
            }
            (folder, change_files)
        })
        .collect();
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2));
    group.bench_function("unchanged_60_site_folders", |b| {
        b.iter(|| {
            let mut same = 0;
            for (folder, files) in &expected {
                let want = folder_oid(folder, files).unwrap();
                let have = repo.tree_oid_at(folder).unwrap().unwrap_or(Oid::EMPTY_TREE);
                same += usize::from(want == have);
            }
            assert_eq!(same, data::SITES);
            // Nothing to commit either.
            let change = repo.change().unwrap();
            assert!(change.commit(&author(), "none", &[]).unwrap().is_none());
        })
    });
    group.finish();
}

/// The files of `folder` at HEAD, read through git (setup only).
fn git_files(repo: &DesiredStateRepo, folder: &str) -> Vec<verbund_git::RenderedFile> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo.path())
        .args(["archive", "--format=tar", "HEAD", folder])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut files = Vec::new();
    let mut rest = out.stdout.as_slice();
    // A minimal tar reader: 512-byte headers, name at 0..100, size (octal) at 124..136.
    while rest.len() >= 512 && rest[0] != 0 {
        let header = &rest[..512];
        let name = String::from_utf8_lossy(&header[..100])
            .trim_end_matches('\0')
            .to_owned();
        let size_text = String::from_utf8_lossy(&header[124..136]);
        let size =
            usize::from_str_radix(size_text.trim_matches(|c: char| c == '\0' || c == ' '), 8)
                .unwrap_or(0);
        let typeflag = header[156];
        let prefix = String::from_utf8_lossy(&header[345..500])
            .trim_end_matches('\0')
            .to_owned();
        rest = &rest[512..];
        let body = &rest[..size];
        rest = &rest[size.div_ceil(512) * 512..];
        if typeflag == b'0' || typeflag == 0 {
            let path = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            files.push(verbund_git::RenderedFile {
                path,
                content: String::from_utf8(body.to_vec()).unwrap(),
            });
        }
    }
    files
}

criterion_group!(benches, bench);
criterion_main!(benches);
