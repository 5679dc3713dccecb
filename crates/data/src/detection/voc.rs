//! Pascal VOC detection annotations: one XML file per image.

use super::{DetectionImage, DetectionSet};
use crate::dataset::check_index;
use crate::folder::decode_capped;
use crate::{DataError, ReadLimits, Result};
use image::imageops::FilterType;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The largest annotation XML read (a VOC file is a few kB; deepforest's largest 190 kB).
const MAX_XML_BYTES: u64 = 16 << 20;

/// One annotated image as read.
#[derive(Debug, Clone)]
struct VocImage {
    xml: PathBuf,
    file: PathBuf,
    size: [usize; 2],
    boxes: Vec<[f32; 4]>,
    labels: Vec<usize>,
    difficult: Vec<bool>,
    /// H×W×3 bytes, decoded once at reading.
    pixels: Arc<Vec<u8>>,
}

/// A Pascal VOC folder read into memory: RGB images (3 channels) with their boxes, labels and
/// `difficult` flags; ids are the images' positions (XML files in name order).
#[derive(Debug, Clone)]
pub struct VocSet {
    images: Vec<VocImage>,
    classes: Vec<String>,
    size: [usize; 2],
}

/// Read a Pascal VOC folder: `PATH/Annotations/*.xml` with images in `PATH/JPEGImages/`, or,
/// when there is no `Annotations/`, `PATH/*.xml` with the images beside them (the layout of
/// deepforest's data folder); each resized to `size` (`[H, W]`, boxes scaled) when given.
/// Classes are the object names found, sorted.
pub fn read_voc(path: &Path, size: Option<[usize; 2]>) -> Result<VocSet> {
    read_voc_with(path, size, None, &ReadLimits::default())
}

/// [`read_voc`] with the class list given (an object of another name is an error naming it)
/// and explicit limits (the decoded images together must fit `limits.max_decoded_bytes`).
///
/// What is read from each XML: `<filename>`, `<size>` (`<width>`, `<height>`, required),
/// every `<object>`'s `<name>`, `<difficult>` (0 when absent) and `<bndbox>` (`<xmin>`,
/// `<ymin>`, `<xmax>`, `<ymax>`). VOC numbers pixels from 1 and its box includes both end
/// pixels, so the continuous box is `[xmin − 1, ymin − 1, xmax, ymax]`; it must lie inside the
/// image with x2 > x1 and y2 > y1. A `<filename>` naming a TIFF (which nabla does not decode)
/// is read from a PNG or JPEG of the same stem beside it (deepforest ships `OSBS_029.tif` with
/// `OSBS_029.png`). Errors name the file, and the line and element for XML.
pub fn read_voc_with(
    path: &Path,
    size: Option<[usize; 2]>,
    classes: Option<Vec<String>>,
    limits: &ReadLimits,
) -> Result<VocSet> {
    if !path.is_dir() {
        return Err(DataError::format(
            path,
            "no such folder (a Pascal VOC folder holds Annotations/ and JPEGImages/)",
        ));
    }
    if let Some(s) = size {
        if s.contains(&0) || s.iter().any(|&v| v > limits.max_image_side as usize) {
            return Err(DataError::format(
                path,
                format!(
                    "resize to {}x{}: each side must be in 1..={}",
                    s[0], s[1], limits.max_image_side
                ),
            ));
        }
    }
    let (xml_dir, image_dir) = if path.join("Annotations").is_dir() {
        (path.join("Annotations"), path.join("JPEGImages"))
    } else {
        (path.to_path_buf(), path.to_path_buf())
    };
    let mut xmls: Vec<PathBuf> = std::fs::read_dir(&xml_dir)
        .map_err(|e| DataError::io(&xml_dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("xml")))
        .collect();
    xmls.sort();
    if xmls.is_empty() {
        return Err(DataError::format(
            &xml_dir,
            "no annotation .xml file here; the set is empty",
        ));
    }
    let parsed = xmls
        .iter()
        .map(|x| parse_xml(x, &image_dir))
        .collect::<Result<Vec<Parsed>>>()?;
    let classes = match classes {
        Some(c) => c,
        None => {
            let mut names: Vec<String> = parsed
                .iter()
                .flat_map(|p| p.objects.iter().map(|o| o.name.clone()))
                .collect();
            names.sort();
            names.dedup();
            names
        }
    };
    let mut budget = limits.max_decoded_bytes;
    let mut images = Vec::with_capacity(parsed.len());
    for p in parsed {
        let mut labels = Vec::with_capacity(p.objects.len());
        for o in &p.objects {
            let class = classes.iter().position(|c| *c == o.name).ok_or_else(|| {
                DataError::format(
                    &p.xml,
                    format!(
                        "line {}: <name>{}</name> is not one of the classes {classes:?}",
                        o.line, o.name
                    ),
                )
            })?;
            labels.push(class);
        }
        let img = decode_capped(&p.file, limits)?.to_rgb8();
        let got = [img.height() as usize, img.width() as usize];
        if got != p.size {
            return Err(DataError::format(
                &p.xml,
                format!(
                    "<size> says {}x{} (HxW) but {} is {}x{}",
                    p.size[0],
                    p.size[1],
                    p.file.display(),
                    got[0],
                    got[1]
                ),
            ));
        }
        let (img, out, scale) = match size {
            Some([h, w]) if [h, w] != got => {
                let r = image::imageops::resize(&img, w as u32, h as u32, FilterType::Triangle);
                (r, [h, w], [w as f32 / got[1] as f32, h as f32 / got[0] as f32])
            }
            _ => (img, got, [1.0, 1.0]),
        };
        let bytes = (out[0] * out[1] * 3) as u64;
        budget = budget.checked_sub(bytes).ok_or_else(|| DataError::TooLarge {
            path: p.file.clone(),
            what: "the decoded images so far".into(),
            size: limits.max_decoded_bytes.saturating_sub(budget).saturating_add(bytes),
            limit: limits.max_decoded_bytes,
        })?;
        let boxes = p
            .objects
            .iter()
            .map(|o| {
                [
                    o.bbox[0] * scale[0],
                    o.bbox[1] * scale[1],
                    o.bbox[2] * scale[0],
                    o.bbox[3] * scale[1],
                ]
            })
            .collect();
        images.push(VocImage {
            xml: p.xml,
            file: p.file,
            size: out,
            boxes,
            labels,
            difficult: p.objects.iter().map(|o| o.difficult).collect(),
            pixels: Arc::new(img.into_raw()),
        });
    }
    let first = images[0].size;
    let size = if images.iter().all(|i| i.size == first) {
        first
    } else {
        [0, 0]
    };
    Ok(VocSet { images, classes, size })
}

impl VocSet {
    /// The image files, in id order.
    pub fn files(&self) -> Vec<&Path> {
        self.images.iter().map(|i| i.file.as_path()).collect()
    }

    /// The annotation files, in id order.
    pub fn annotation_files(&self) -> Vec<&Path> {
        self.images.iter().map(|i| i.xml.as_path()).collect()
    }

    /// Image `index`'s `difficult` flags, one per box (the boxes include difficult objects).
    pub fn difficult(&self, index: usize) -> Result<&[bool]> {
        check_index("VocSet::difficult", index, self.images.len())?;
        Ok(&self.images[index].difficult)
    }

    /// Split off the images named in `names` (a file name or its stem, e.g. `OSBS_029` or
    /// `OSBS_029.png`): `(the others, the named)`, each keeping the class list, so a model can
    /// train on all but a held-out image; a name that matches no image is an error.
    pub fn hold_out(&self, names: &[&str]) -> Result<(VocSet, VocSet)> {
        let matches = |img: &VocImage, n: &str| {
            let f = |p: &Path| p.file_name().is_some_and(|s| s == n) || p.file_stem().is_some_and(|s| s == n);
            f(&img.file) || f(&img.xml)
        };
        for n in names {
            if !self.images.iter().any(|i| matches(i, n)) {
                let have: Vec<String> = self
                    .images
                    .iter()
                    .map(|i| i.file.file_name().unwrap_or_default().to_string_lossy().into_owned())
                    .collect();
                return Err(DataError::invalid(
                    "VocSet::hold_out",
                    format!("no image named {n:?} (images: {have:?})"),
                ));
            }
        }
        let (out, rest): (Vec<VocImage>, Vec<VocImage>) = self
            .images
            .iter()
            .cloned()
            .partition(|i| names.iter().any(|n| matches(i, n)));
        if rest.is_empty() {
            return Err(DataError::invalid(
                "VocSet::hold_out",
                "holding out every image leaves nothing to train on",
            ));
        }
        let part = |images: Vec<VocImage>| {
            let first = images[0].size;
            let size = if images.iter().all(|i| i.size == first) {
                first
            } else {
                [0, 0]
            };
            VocSet {
                images,
                classes: self.classes.clone(),
                size,
            }
        };
        Ok((part(rest), part(out)))
    }

    /// Image `index`'s region at `origin` (`[y, x]`) of `size` as C×H×W f32, zero outside the
    /// image, with every box shifted into the region's frame (not clipped).
    fn region(&self, index: usize, origin: [usize; 2], size: [usize; 2]) -> DetectionImage {
        let img = &self.images[index];
        let [ih, iw] = img.size;
        let [h, w] = size;
        let plane = h * w;
        let mut out = vec![0f32; 3 * plane];
        for y in 0..h.min(ih.saturating_sub(origin[0])) {
            let row = (origin[0] + y) * iw;
            for x in 0..w.min(iw.saturating_sub(origin[1])) {
                let at = (row + origin[1] + x) * 3;
                for c in 0..3 {
                    out[c * plane + y * w + x] = img.pixels[at + c] as f32 / 255.0;
                }
            }
        }
        let (oy, ox) = (origin[0] as f32, origin[1] as f32);
        DetectionImage {
            id: index as u64,
            channels: 3,
            size,
            image: out,
            boxes: img
                .boxes
                .iter()
                .map(|b| [b[0] - ox, b[1] - oy, b[2] - ox, b[3] - oy])
                .collect(),
            labels: img.labels.clone(),
        }
    }
}

impl DetectionSet for VocSet {
    fn len(&self) -> usize {
        self.images.len()
    }
    fn channels(&self) -> usize {
        3
    }
    fn size(&self) -> [usize; 2] {
        self.size
    }
    fn image_size(&self, index: usize) -> Result<[usize; 2]> {
        check_index("VocSet::image_size", index, self.images.len())?;
        Ok(self.images[index].size)
    }
    fn get(&self, index: usize) -> Result<DetectionImage> {
        check_index("VocSet::get", index, self.images.len())?;
        Ok(self.region(index, [0, 0], self.images[index].size))
    }
    fn get_region(&self, index: usize, origin: [usize; 2], size: [usize; 2]) -> Result<DetectionImage> {
        check_index("VocSet::get_region", index, self.images.len())?;
        Ok(self.region(index, origin, size))
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
}

/// One `<object>` as read.
struct VocObject {
    name: String,
    bbox: [f32; 4],
    difficult: bool,
    line: u32,
}

/// One XML file as read, before its image is decoded.
struct Parsed {
    xml: PathBuf,
    file: PathBuf,
    size: [usize; 2],
    objects: Vec<VocObject>,
}

fn parse_xml(xml: &Path, image_dir: &Path) -> Result<Parsed> {
    let bytes = crate::dataset::read_capped(xml, MAX_XML_BYTES)?;
    let text = String::from_utf8(bytes).map_err(|_| DataError::format(xml, "not UTF-8 text"))?;
    let doc = roxmltree::Document::parse(&text).map_err(|e| DataError::format(xml, format!("not valid XML: {e}")))?;
    let line = |n: roxmltree::Node| doc.text_pos_at(n.range().start).row;
    let bad = |n: roxmltree::Node, msg: String| DataError::format(xml, format!("line {}: {msg}", line(n)));
    let root = doc.root_element();
    if root.tag_name().name() != "annotation" {
        return Err(bad(
            root,
            format!("the root element is <{}>, not <annotation>", root.tag_name().name()),
        ));
    }
    let text_of = |n: roxmltree::Node, tag: &str| -> Result<String> {
        let c = child(n, tag).ok_or_else(|| bad(n, format!("<{}> has no <{tag}>", n.tag_name().name())))?;
        Ok(c.text().unwrap_or("").trim().to_string())
    };
    let number = |n: roxmltree::Node, tag: &str| -> Result<f64> {
        let t = text_of(n, tag)?;
        t.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
            bad(
                child(n, tag).unwrap_or(n),
                format!("<{tag}>{t}</{tag}> is not a number"),
            )
        })
    };
    let name = text_of(root, "filename")?;
    if name.is_empty() || !inside(&name) {
        return Err(bad(
            root,
            format!(
                "<filename>{name}</filename> must name a file inside {}",
                image_dir.display()
            ),
        ));
    }
    let size_el = child(root, "size").ok_or_else(|| bad(root, "no <size> (width and height are required)".into()))?;
    let mut size = [0usize; 2];
    for (s, tag) in size.iter_mut().zip(["height", "width"]) {
        let v = number(size_el, tag)?;
        if v < 1.0 || v.fract() != 0.0 {
            return Err(bad(size_el, format!("<{tag}> {v} is not a whole number ≥ 1")));
        }
        *s = v as usize;
    }
    let file = find_image(image_dir, &name).ok_or_else(|| {
        bad(
            root,
            format!(
                "unknown image: <filename>{name}</filename> is not in {}",
                image_dir.display()
            ),
        )
    })?;
    let mut objects = Vec::new();
    for (k, o) in root.children().filter(|c| c.has_tag_name("object")).enumerate() {
        let at = |msg: String| bad(o, format!("<object> {k}: {msg}"));
        let name = text_of(o, "name")?;
        if name.is_empty() {
            return Err(at("empty <name>".into()));
        }
        let difficult = match child(o, "difficult").map(|d| d.text().unwrap_or("").trim().to_string()) {
            None => false,
            Some(t) if t == "0" => false,
            Some(t) if t == "1" => true,
            Some(t) => return Err(at(format!("<difficult>{t}</difficult> is not 0 or 1"))),
        };
        let bb = child(o, "bndbox").ok_or_else(|| at("no <bndbox>".into()))?;
        let [xmin, ymin, xmax, ymax] = [
            number(bb, "xmin")?,
            number(bb, "ymin")?,
            number(bb, "xmax")?,
            number(bb, "ymax")?,
        ];
        let b = [xmin - 1.0, ymin - 1.0, xmax, ymax];
        if b[2] <= b[0] || b[3] <= b[1] {
            return Err(at(format!(
                "box xmin {xmin} ymin {ymin} xmax {xmax} ymax {ymax} has xmax < xmin or ymax < ymin"
            )));
        }
        if b[0] < 0.0 || b[1] < 0.0 || b[2] > size[1] as f64 || b[3] > size[0] as f64 {
            return Err(at(format!(
                "box xmin {xmin} ymin {ymin} xmax {xmax} ymax {ymax} lies outside the {}x{} image (VOC pixels run 1..=width)",
                size[1], size[0]
            )));
        }
        objects.push(VocObject {
            name,
            bbox: b.map(|v| v as f32),
            difficult,
            line: line(o),
        });
    }
    Ok(Parsed {
        xml: xml.to_path_buf(),
        file,
        size,
        objects,
    })
}

/// The image file `name` in `dir`; for a TIFF, a PNG or JPEG of the same stem.
fn find_image(dir: &Path, name: &str) -> Option<PathBuf> {
    let p = dir.join(name);
    let tiff = p
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff"));
    if !tiff {
        return p.is_file().then_some(p);
    }
    ["png", "PNG", "jpg", "JPG", "jpeg"]
        .iter()
        .map(|e| p.with_extension(e))
        .find(|q| q.is_file())
}

/// A relative file name that stays inside its folder (no root, no `..`).
fn inside(name: &str) -> bool {
    use std::path::Component;
    Path::new(name)
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The first child element of `n` named `tag`.
fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(tag))
}
