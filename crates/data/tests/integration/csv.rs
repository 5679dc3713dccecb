//! CSV tables: column choice, standardization, and bad tables.

use super::common::TempDir;
use nabla_data::{CsvDataset, CsvOptions, DataError, Dataset, Standardize, Target};
use std::path::Path;

const TABLE: &str = "a,b,\"price\",kind\n1,10,100.5,2\n2,20,200,10\n\n3,60,300,2\n";

fn parse(text: &str, opts: &CsvOptions) -> Result<CsvDataset, DataError> {
    CsvDataset::parse(text, Path::new("t.csv"), opts)
}

#[test]
fn regression_with_chosen_features() {
    let ds = parse(TABLE, &CsvOptions::regression("price").with_features(&["b", "a"])).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.feature_names(), ["b", "a"]);
    let s = ds.get(1).unwrap();
    assert_eq!(
        (s.data, s.shape, s.target),
        (vec![20.0, 2.0], vec![2], Target::Values(vec![200.0]))
    );
    assert!(ds.classes().is_empty() && ds.stats().is_none());
}

#[test]
fn classification_classes_sort_numerically() {
    let ds = parse(TABLE, &CsvOptions::classification("kind")).unwrap();
    assert_eq!(ds.classes(), ["2", "10"]);
    assert_eq!(ds.feature_names(), ["a", "b", "price"]);
    let labels: Vec<_> = (0..3).map(|i| ds.get(i).unwrap().target).collect();
    assert_eq!(labels, [Target::Class(0), Target::Class(1), Target::Class(0)]);
}

#[test]
fn standardization_fits_and_transfers() {
    let ds = parse(
        TABLE,
        &CsvOptions::regression("price")
            .with_features(&["a", "b"])
            .standardized(),
    )
    .unwrap();
    let stats = ds.stats().unwrap().clone();
    // a: 1,2,3 → mean 2, population std sqrt(2/3); b: 10,20,60 → mean 30, std sqrt(1400/3).
    assert_eq!(stats.mean, vec![2.0, 30.0]);
    assert!((stats.std[0] - (2.0f32 / 3.0).sqrt()).abs() < 1e-6);
    assert!((stats.std[1] - (1400.0f32 / 3.0).sqrt()).abs() < 1e-3);
    let s = ds.get(0).unwrap();
    assert!((s.data[0] + 1.0 / (2.0f32 / 3.0).sqrt()).abs() < 1e-5, "{:?}", s.data);
    // Test-set rows use the training statistics.
    let mut opts = CsvOptions::regression("price").with_features(&["a", "b"]);
    opts.standardize = Standardize::With(stats.clone());
    let test = parse("a,b,price\n2,30,0\n", &opts).unwrap();
    assert_eq!(test.get(0).unwrap().data, vec![0.0, 0.0]);
    opts.features = Some(vec!["a".into()]);
    assert!(parse("a,b,price\n2,30,0\n", &opts).is_err());
    // A constant column keeps std 1 instead of dividing by zero.
    let c = parse("x,y\n5,1\n5,2\n", &CsvOptions::regression("y").standardized()).unwrap();
    assert_eq!(c.stats().unwrap().std, vec![1.0]);
    assert_eq!(c.get(1).unwrap().data, vec![0.0]);
}

#[test]
fn bad_tables_name_the_row_and_column() {
    match parse(TABLE, &CsvOptions::regression("cost")) {
        Err(DataError::MissingColumn { column, available, .. }) => {
            assert_eq!(column, "cost");
            assert_eq!(available, ["a", "b", "price", "kind"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse(TABLE, &CsvOptions::regression("price").with_features(&["a", "zz"])),
        Err(DataError::MissingColumn { column, .. }) if column == "zz"
    ));
    let e = parse("a,b\n1,2\n3,x7\n", &CsvOptions::regression("b")).unwrap_err();
    match &e {
        DataError::Csv { line, column, msg, .. } => {
            assert_eq!((*line, column.as_str()), (3, "b"));
            assert!(msg.contains("\"x7\""), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("t.csv: line 3, column \"b\""), "{e}");
    let e = parse("a,b\n1,2\n3\n", &CsvOptions::regression("b")).unwrap_err();
    assert!(matches!(&e, DataError::Csv { line: 3, .. }) && e.to_string().contains("1 fields, but the header has 2"));
    let e = parse("a,b\n1,2,3\n", &CsvOptions::regression("b")).unwrap_err();
    assert!(matches!(e, DataError::Csv { line: 2, .. }));
    let e = parse("a,b\n1,\n", &CsvOptions::regression("b")).unwrap_err();
    assert!(matches!(e, DataError::Csv { line: 2, .. }));
    let e = parse("a,b\nnan,1\n", &CsvOptions::regression("b")).unwrap_err();
    assert!(matches!(e, DataError::Csv { line: 2, ref column, .. } if column == "a"));
    assert!(parse("", &CsvOptions::regression("b")).is_err());
}

#[test]
fn files_and_quoted_fields() {
    let dir = TempDir::new("csv");
    let p = dir.write("t.csv", b"\"x\";\"y\"\r\n\"1.5\";2\r\n");
    let mut opts = CsvOptions::regression("y");
    opts.delimiter = ';';
    let ds = CsvDataset::load(&p, &opts).unwrap();
    assert_eq!(ds.get(0).unwrap().data, vec![1.5]);
    let bad = dir.write("bad.csv", &[b'a', b'\n', 0xFF, b'\n']);
    assert!(CsvDataset::load(&bad, &opts)
        .unwrap_err()
        .to_string()
        .contains("not UTF-8"));
}
