//! Scoreboard render time (the server's part of a page: view from the index + HTML or
//! JSON) for a platform of 500 teams, each with one namespace, two SLOs and ten Releases;
//! a quarter of the namespaces dry-run, so the adoption page has work. The team page is
//! rendered with charts of 120 and 180 points per SLO, as Prometheus gives them.

use budgetgate::api::{BudgetState, ReleasePhase, Timestamp};
use budgetgate::index::{Index, NamespaceMeta, ObjectKey, ReleaseEntry};
use budgetgate::scoreboard::{self, Charts, Series, html};
use criterion::{Criterion, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TEAMS: usize = 500;

fn platform_of(teams: usize) -> Index {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/samples"));
    let (mut index, _) = budgetgate::load::load_state(root, &root.join("budgets.json")).unwrap();
    let slo = index.slos[&ObjectKey::new("shop", "checkout-availability")].clone();
    let assessment = index.budgets.slos[&ObjectKey::new("shop", "checkout-availability")].clone();
    let created: Timestamp = "2026-11-29T09:00:00Z".parse().unwrap();
    for i in 0..teams {
        let (ns, team) = (format!("ns-{i:03}"), format!("team-{i:03}"));
        let labels = BTreeMap::from([
            ("budgetgate.dev/team".to_owned(), team.clone()),
            ("budgetgate.dev/tier".to_owned(), "production".to_owned()),
            (
                "budgetgate.dev/enforcement".to_owned(),
                if i % 4 == 0 { "dryrun" } else { "enforce" }.to_owned(),
            ),
        ]);
        index
            .namespaces
            .insert(ns.clone(), NamespaceMeta::from_labels(&labels));
        let mut a = assessment.clone();
        a.remaining = Some(1.0 - 1.5 * i as f64 / teams as f64);
        if a.remaining < Some(0.0) {
            a.state = BudgetState::Exhausted;
        }
        for name in ["availability", "latency"] {
            let key = ObjectKey::new(&ns, name);
            index.slos.insert(key.clone(), slo.clone());
            index.budgets.slos.insert(key, a.clone());
        }
        index.budgets.teams.insert((team, "production".into()), a);
        for r in 0..10 {
            index.releases.insert(
                ObjectKey::new(&ns, format!("app-{r}")),
                ReleaseEntry {
                    deployment: "app".into(),
                    created: Some(created),
                    phase: Some(ReleasePhase::Promoted),
                    revision: format!("{r:010}"),
                    remaining_at_start: Some(0.3),
                    ..ReleaseEntry::default()
                },
            );
        }
    }
    index
}

fn series(start: i64, points: i64, step: i64) -> Series {
    Series {
        start,
        end: start + points * step,
        points: (0..points)
            .map(|i| (start + i * step, 1.0 - i as f64 / 200.0))
            .collect(),
        missing: None,
    }
}

fn render(c: &mut Criterion) {
    let index = platform_of(TEAMS);
    let now: Timestamp = "2026-11-29T10:00:00Z".parse().unwrap();
    let page = html::platform(&scoreboard::platform(&index, now));
    println!(
        "platform page: {TEAMS} teams, {} KB of HTML",
        page.len() / 1024
    );
    c.bench_function("platform_page_500_teams_html", |b| {
        b.iter(|| html::platform(&scoreboard::platform(black_box(&index), now)))
    });
    c.bench_function("platform_page_500_teams_json", |b| {
        b.iter(|| serde_json::to_vec(&scoreboard::platform(black_box(&index), now)).unwrap())
    });
    c.bench_function("adoption_page_500_teams_html", |b| {
        b.iter(|| html::adoption(&scoreboard::adoption(black_box(&index), now)))
    });
    let start = now.as_second() - 30 * 86_400;
    let charts: BTreeMap<ObjectKey, Charts> = ["availability", "latency"]
        .iter()
        .map(|name| {
            (
                ObjectKey::new("ns-100", *name),
                Charts {
                    burndown: series(start, 120, 21_600),
                    burn: series(now.as_second() - 21_600, 180, 120),
                },
            )
        })
        .collect();
    c.bench_function("team_page_html_among_500_teams", |b| {
        b.iter(|| {
            html::team(&scoreboard::team(black_box(&index), "team-100", &charts, now).unwrap())
        })
    });
}

criterion_group!(benches, render);
criterion_main!(benches);
