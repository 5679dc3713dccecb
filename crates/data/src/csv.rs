//! Numeric CSV tables with a header, for regression and tabular classification.
//!
//! ```
//! use nabla_data::{CsvDataset, CsvOptions, Dataset, Target};
//! let text = "x,y,label\n1,10,cat\n3,30,dog\n";
//! let ds = CsvDataset::parse(text, "t.csv".as_ref(), &CsvOptions::classification("label").standardized())?;
//! assert_eq!(ds.classes(), ["cat", "dog"]);
//! let s = ds.get(1)?;
//! assert_eq!((s.data, s.target), (vec![1.0, 1.0], Target::Class(1)));
//! # Ok::<(), nabla_data::DataError>(())
//! ```

use crate::dataset::{check_index, read_capped};
use crate::{DataError, Dataset, ReadLimits, Result, Sample, Target};
use std::path::Path;

/// What the target column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// A number to predict.
    Regression,
    /// A class: each distinct value is a class (sorted, numerically when all are numbers).
    Classification,
}

/// Per-feature mean and standard deviation used to standardize (`(x - mean) / std`).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStats {
    /// The mean of each feature column.
    pub mean: Vec<f32>,
    /// The population standard deviation of each column (1 for constant columns).
    pub std: Vec<f32>,
}

/// Whether and how features are standardized.
#[derive(Debug, Clone, PartialEq)]
pub enum Standardize {
    /// Keep the raw values.
    None,
    /// Compute the statistics from this table.
    Fit,
    /// Use given statistics (a training set's, for its test set).
    With(FeatureStats),
}

/// Which columns to read and how.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    /// The name of the target column.
    pub target: String,
    /// The feature columns, in order; `None` means every column but the target.
    pub features: Option<Vec<String>>,
    /// Regression or classification.
    pub task: Task,
    /// Feature standardization.
    pub standardize: Standardize,
    /// The field separator.
    pub delimiter: char,
}

impl CsvOptions {
    /// A regression table with `target` as the value to predict.
    pub fn regression(target: &str) -> Self {
        CsvOptions {
            target: target.to_string(),
            features: None,
            task: Task::Regression,
            standardize: Standardize::None,
            delimiter: ',',
        }
    }

    /// A classification table with `target` as the class column.
    pub fn classification(target: &str) -> Self {
        CsvOptions {
            task: Task::Classification,
            ..Self::regression(target)
        }
    }

    /// Use only these feature columns, in this order.
    pub fn with_features(mut self, names: &[&str]) -> Self {
        self.features = Some(names.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Standardize features with statistics computed from this table.
    pub fn standardized(mut self) -> Self {
        self.standardize = Standardize::Fit;
        self
    }
}

/// A table of f32 features with class labels or regression targets.
#[derive(Debug, Clone)]
pub struct CsvDataset {
    features: Vec<f32>,
    feature_names: Vec<String>,
    labels: Vec<usize>,
    values: Vec<f32>,
    classes: Vec<String>,
    stats: Option<FeatureStats>,
    rows: usize,
    task: Task,
}

/// Split one line into fields; double quotes group a field and `""` inside quotes is a quote.
fn split_fields(line: &str, delim: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == delim && !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

impl CsvDataset {
    /// Read and parse a CSV file.
    pub fn load(path: &Path, opts: &CsvOptions) -> Result<Self> {
        let raw = read_capped(path, ReadLimits::default().max_file_bytes)?;
        let text = String::from_utf8(raw).map_err(|e| DataError::format(path, format!("not UTF-8: {e}")))?;
        Self::parse(&text, path, opts)
    }

    /// Parse CSV text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path, opts: &CsvOptions) -> Result<Self> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines
            .next()
            .ok_or_else(|| DataError::format(origin, "empty file: no header line"))?;
        let header = split_fields(header, opts.delimiter);
        let find = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| DataError::MissingColumn {
                    path: origin.to_path_buf(),
                    column: name.to_string(),
                    available: header.clone(),
                })
        };
        let target_col = find(&opts.target)?;
        let feature_names: Vec<String> = match &opts.features {
            Some(names) => names.clone(),
            None => header
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != target_col)
                .map(|(_, h)| h.clone())
                .collect(),
        };
        let feature_cols = feature_names.iter().map(|n| find(n)).collect::<Result<Vec<_>>>()?;
        let csv_err = |line: usize, col: usize, msg: String| DataError::Csv {
            path: origin.to_path_buf(),
            line,
            column: header.get(col).cloned().unwrap_or_default(),
            msg,
        };
        let number = |line: usize, col: usize, cell: &str| -> Result<f32> {
            match cell.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v as f32),
                _ => Err(csv_err(line, col, format!("{cell:?} is not a finite number"))),
            }
        };
        let mut features = Vec::new();
        let mut raw_targets = Vec::new();
        for (line, l) in lines {
            let cells = split_fields(l, opts.delimiter);
            if cells.len() != header.len() {
                return Err(DataError::Csv {
                    path: origin.to_path_buf(),
                    line,
                    column: String::new(),
                    msg: format!("{} fields, but the header has {}", cells.len(), header.len()),
                });
            }
            for &c in &feature_cols {
                features.push(number(line, c, &cells[c])?);
            }
            let t = &cells[target_col];
            if opts.task == Task::Regression {
                number(line, target_col, t)?;
            } else if t.is_empty() {
                return Err(csv_err(line, target_col, "empty class".into()));
            }
            raw_targets.push((line, t.clone()));
        }
        let rows = raw_targets.len();
        let (labels, values, classes) = match opts.task {
            Task::Regression => {
                let v = raw_targets
                    .iter()
                    .map(|(line, t)| number(*line, target_col, t))
                    .collect::<Result<Vec<_>>>()?;
                (Vec::new(), v, Vec::new())
            }
            Task::Classification => {
                let (labels, classes) = class_indices(raw_targets.iter().map(|(_, t)| t.as_str()));
                (labels, Vec::new(), classes)
            }
        };
        let width = feature_cols.len();
        let stats = match &opts.standardize {
            Standardize::None => None,
            Standardize::Fit => Some(fit_stats(&features, width, rows)),
            Standardize::With(s) => {
                if s.mean.len() != width || s.std.len() != width {
                    return Err(DataError::invalid(
                        "CsvDataset::parse",
                        format!(
                            "statistics for {} features, but {width} feature columns are read",
                            s.mean.len()
                        ),
                    ));
                }
                Some(s.clone())
            }
        };
        if let Some(s) = &stats {
            for row in features.chunks_exact_mut(width.max(1)) {
                for ((x, m), sd) in row.iter_mut().zip(&s.mean).zip(&s.std) {
                    *x = (*x - m) / sd;
                }
            }
        }
        Ok(CsvDataset {
            features,
            feature_names,
            labels,
            values,
            classes,
            stats,
            rows,
            task: opts.task,
        })
    }

    /// The feature column names, in sample order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The standardization statistics in use (to apply to a test table).
    pub fn stats(&self) -> Option<&FeatureStats> {
        self.stats.as_ref()
    }
}

fn class_indices<'a>(targets: impl Iterator<Item = &'a str> + Clone) -> (Vec<usize>, Vec<String>) {
    let mut classes: Vec<String> = targets.clone().map(String::from).collect();
    classes.sort();
    classes.dedup();
    let nums: Option<Vec<f64>> = classes.iter().map(|c| c.parse::<f64>().ok()).collect();
    if let Some(nums) = nums {
        let mut pairs: Vec<(f64, String)> = nums.into_iter().zip(classes).collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        classes = pairs.into_iter().map(|(_, c)| c).collect();
    }
    let labels = targets
        .map(|t| classes.iter().position(|c| c == t).unwrap_or(0))
        .collect();
    (labels, classes)
}

fn fit_stats(features: &[f32], width: usize, rows: usize) -> FeatureStats {
    let mut mean = vec![0f64; width];
    let mut var = vec![0f64; width];
    // Two passes in f64: E[x²] − E[x]² loses everything for large means with small spread.
    for row in features.chunks_exact(width.max(1)) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += x as f64;
        }
    }
    let n = rows.max(1) as f64;
    mean.iter_mut().for_each(|m| *m /= n);
    for row in features.chunks_exact(width.max(1)) {
        for ((v, m), &x) in var.iter_mut().zip(&mean).zip(row) {
            *v += (x as f64 - m).powi(2);
        }
    }
    let std = var
        .iter()
        .map(|v| {
            let s = (v / n).sqrt();
            if s > 1e-12 {
                s as f32
            } else {
                1.0
            }
        })
        .collect();
    FeatureStats {
        mean: mean.into_iter().map(|m| m as f32).collect(),
        std,
    }
}

impl Dataset for CsvDataset {
    fn len(&self) -> usize {
        self.rows
    }

    fn get(&self, index: usize) -> Result<Sample> {
        check_index("CsvDataset::get", index, self.rows)?;
        let w = self.feature_names.len();
        let target = if self.task == Task::Regression {
            Target::Values(vec![self.values[index]])
        } else {
            Target::Class(self.labels[index])
        };
        Ok(Sample {
            data: self.features[index * w..(index + 1) * w].to_vec(),
            shape: vec![w],
            target,
        })
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }
}
