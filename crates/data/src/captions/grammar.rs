//! The scene captions' grammar and the scene scores (exact match, object counts).

use super::super::scenes::SceneObject;
use crate::text::tokenize;
use crate::{DataError, Result};

/// How many reference sentences a scene gets.
pub const SCENE_REFERENCES: usize = 5;

/// Count words 1..=10 ("one" is written as the article).
const NUMBERS: [&str; 10] = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
];

/// A class name in words: (singular, plural). The name is lower-cased and cut at its first
/// `/` ("T-shirt/top" → "t-shirt"); the plural adds "es" after s, x, ch or sh, else "s".
pub fn class_words(name: &str) -> (String, String) {
    let lower = name.to_lowercase();
    let one = lower.split('/').next().unwrap_or("").trim().to_string();
    let es = ["s", "x", "ch", "sh"].iter().any(|e| one.ends_with(e));
    let many = format!("{one}{}", if es { "es" } else { "s" });
    (one, many)
}

/// "a" or "an" (a vowel letter first) before `word`.
fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

/// `n` items of a class: "a shirt", "an ankle boot", "two shirts", ..., "ten shirts", "11 shirts".
fn noun_phrase(n: usize, words: &(String, String)) -> String {
    match n {
        1 => format!("{} {}", article(&words.0), words.0),
        2..=10 => format!("{} {}", NUMBERS[n - 1], words.1),
        _ => format!("{n} {}", words.1),
    }
}

/// Where group `a` is relative to group `b` (centres `[x, y]`, y down): the axis with the
/// larger centre difference decides (a tie goes to the horizontal one).
fn relation(a: [f32; 2], b: [f32; 2]) -> &'static str {
    let (dx, dy) = (a[0] - b[0], a[1] - b[1]);
    if dx.abs() >= dy.abs() {
        if dx < 0.0 {
            "to the left of"
        } else {
            "to the right of"
        }
    } else if dy < 0.0 {
        "above"
    } else {
        "below"
    }
}

/// "A", "A and B", "A, B and C", ...
fn list(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [head @ .., last] => format!("{} and {last}", head.join(", ")),
    }
}

/// The reference sentences of a scene with these items (see the module doc for the grammar).
pub fn scene_captions(objects: &[SceneObject], classes: &[String]) -> Vec<String> {
    // Groups: one per class present, with its count and the mean of its items' box centres.
    let mut groups: Vec<(usize, usize, [f32; 2])> = Vec::new();
    for o in objects {
        let c = [o.bbox[0] + o.bbox[2] / 2.0, o.bbox[1] + o.bbox[3] / 2.0];
        match groups.iter_mut().find(|g| g.0 == o.class) {
            Some(g) => {
                g.1 += 1;
                g.2 = [g.2[0] + c[0], g.2[1] + c[1]];
            }
            None => groups.push((o.class, 1, c)),
        }
    }
    if groups.is_empty() {
        return vec!["an empty picture".to_string()];
    }
    for g in &mut groups {
        g.2 = [g.2[0] / g.1 as f32, g.2[1] / g.1 as f32];
    }
    // Left to right by centre, then top to bottom, then class.
    groups.sort_by(|a, b| {
        a.2[0]
            .total_cmp(&b.2[0])
            .then(a.2[1].total_cmp(&b.2[1]))
            .then(a.0.cmp(&b.0))
    });
    let name = |c: usize| class_words(classes.get(c).map(String::as_str).unwrap_or("item"));
    let nps: Vec<String> = groups.iter().map(|g| noun_phrase(g.1, &name(g.0))).collect();
    let all = list(&nps);
    let verb = if objects.len() == 1 { "is" } else { "are" };
    let (chain, back) = if groups.len() == 1 {
        let alone = if groups[0].1 == 1 {
            "on its own"
        } else {
            "next to each other"
        };
        (format!("{} {alone}", nps[0]), format!("only {}", nps[0]))
    } else {
        let chain = |order: Vec<usize>| {
            let mut s = nps[order[0]].clone();
            for w in order.windows(2) {
                s = format!("{s} {} {}", relation(groups[w[0]].2, groups[w[1]].2), nps[w[1]]);
            }
            s
        };
        let n = groups.len();
        (chain((0..n).collect()), chain((0..n).rev().collect()))
    };
    vec![
        all.clone(),
        format!("there {verb} {all}"),
        format!("a picture of {all}"),
        chain,
        back,
    ]
}

/// The number of items of each class a caption mentions: a class name (singular or plural,
/// longest match first, so "t-shirt" is not also a "shirt") counts the number just before it
/// ("two".."ten" or digits), else 1.
pub fn mentioned_counts(caption: &str, classes: &[String]) -> Vec<usize> {
    let forms: Vec<(usize, Vec<String>)> = classes
        .iter()
        .enumerate()
        .flat_map(|(c, name)| {
            let (one, many) = class_words(name);
            [(c, tokenize(&one)), (c, tokenize(&many))]
        })
        .filter(|(_, t)| !t.is_empty())
        .collect();
    let tokens = tokenize(caption);
    let mut counts = vec![0usize; classes.len()];
    let mut i = 0;
    while i < tokens.len() {
        let hit = forms
            .iter()
            .filter(|(_, f)| tokens[i..].starts_with(f))
            .max_by_key(|(_, f)| f.len());
        let Some((c, f)) = hit else {
            i += 1;
            continue;
        };
        let n = match i.checked_sub(1).map(|j| tokens[j].as_str()) {
            Some(w) => match NUMBERS.iter().position(|&x| x == w) {
                Some(k) => k + 1,
                None => w.parse::<usize>().unwrap_or(1),
            },
            None => 1,
        };
        counts[*c] += n;
        i += f.len();
    }
    counts
}

/// Whether the candidate equals one of the references token for token.
pub fn exact_match(candidate: &str, references: &[String]) -> bool {
    let c = tokenize(candidate);
    references.iter().any(|r| tokenize(r) == c)
}

fn check_len(op: &'static str, a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(DataError::invalid(op, format!("{a} candidates but {b} references")));
    }
    if a == 0 {
        return Err(DataError::invalid(op, "no candidates"));
    }
    Ok(())
}

/// The fraction of candidates that equal one of their references after tokenization.
pub fn exact_match_rate<C: AsRef<str>, R: AsRef<[String]>>(candidates: &[C], references: &[R]) -> Result<f64> {
    check_len("exact_match_rate", candidates.len(), references.len())?;
    let hits = candidates
        .iter()
        .zip(references)
        .filter(|(c, r)| exact_match(c.as_ref(), r.as_ref()))
        .count();
    Ok(hits as f64 / candidates.len() as f64)
}

/// The fraction of candidates whose [`mentioned_counts`] equal the scene's items per class
/// (`counts[i][c]`, as [`super::CaptionSet::class_counts`] gives): every class, so naming an
/// item that is not there is wrong too.
pub fn count_accuracy<C: AsRef<str>>(candidates: &[C], counts: &[Vec<usize>], classes: &[String]) -> Result<f64> {
    check_len("count_accuracy", candidates.len(), counts.len())?;
    let hits = candidates
        .iter()
        .zip(counts)
        .filter(|(c, n)| mentioned_counts(c.as_ref(), classes) == **n)
        .count();
    Ok(hits as f64 / candidates.len() as f64)
}
