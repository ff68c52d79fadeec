//! Evaluates the keyword classifier on 300 real citizen messages (TipDM
//! 2020 problem C). Ground truth: each message's 一级分类 mapped to the
//! category most of its rows in `data/taxonomy/category_map.csv` map to.
//! Run with `--nocapture` to print the confusion matrix (docs/routing.md).

use std::collections::HashMap;

use nuannan::domain::Category;
use nuannan::routing::{Classifier, MIN_CONFIDENCE};

fn level1_mapping() -> HashMap<String, Category> {
    let mut votes: HashMap<String, HashMap<String, usize>> = HashMap::new();
    for line in nuannan::routing::TAXONOMY_MAP_CSV.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        *votes.entry(f[0].to_owned()).or_default().entry(f[3].to_owned()).or_default() += 1;
    }
    votes
        .into_iter()
        .map(|(l1, v)| {
            let best = v.into_iter().max_by_key(|(c, n)| (*n, c.clone())).unwrap().0;
            (l1, serde_json::from_value(serde_json::Value::String(best)).unwrap())
        })
        .collect()
}

#[test]
fn keyword_classifier_on_300_real_messages() {
    let path = &format!("{}/tests/fixtures/complaints/teddy2020C_messages_sample300.csv", crate::common::ROOT);
    let mut reader = csv::Reader::from_path(path).unwrap();
    let mapping = level1_mapping();
    let classifier = Classifier::bundled();
    let names = ["livelihood", "enforcement", "development", "triage"];
    let index = |c: Option<Category>| match c {
        Some(Category::Livelihood) => 0,
        Some(Category::Enforcement) => 1,
        Some(Category::Development) => 2,
        None => 3,
    };
    let mut matrix = [[0usize; 4]; 3];
    let mut by_level1: HashMap<String, usize> = HashMap::new();
    for row in reader.records() {
        let row = row.unwrap();
        let (subject, detail, level1) = (&row[2], &row[4], &row[5]);
        let truth = mapping[level1];
        *by_level1.entry(level1.to_owned()).or_default() += 1;
        let predicted = classifier.classify(None, None, &format!("{subject}。{detail}")).map(|c| c.category);
        matrix[index(Some(truth))][index(predicted)] += 1;
    }
    let total: usize = matrix.iter().flatten().sum();
    let correct: usize = (0..3).map(|i| matrix[i][i]).sum();
    let triaged: usize = matrix.iter().map(|r| r[3]).sum();
    let decided = total - triaged;
    println!("一级分类 counts: {by_level1:?}");
    println!("mapping: {:?}", mapping.iter().filter(|(k, _)| by_level1.contains_key(*k)).collect::<Vec<_>>());
    println!("| truth \\ predicted | {} |", names.join(" | "));
    for (i, row) in matrix.iter().enumerate() {
        println!("| {} | {} |", names[i], row.map(|n| n.to_string()).join(" | "));
    }
    let accuracy = correct as f64 / total as f64;
    let precision = correct as f64 / decided as f64;
    println!(
        "messages {total}, min confidence {MIN_CONFIDENCE}: correct {correct} ({:.1} %), to triage {triaged} ({:.1} %), accuracy of automatic decisions {:.1} %",
        accuracy * 100.0,
        triaged as f64 * 100.0 / total as f64,
        precision * 100.0
    );
    assert_eq!(total, 300);
    assert!(precision >= 0.85, "automatic decisions must be right at least 85 % of the time");
    assert!(triaged * 4 <= total, "no more than a quarter to manual triage");
}
