//! Contexts discovered from prompts: a mapper fitted once on the warm-up prompts, then asked for
//! the cluster of each new prompt.
//!
//! * **Features**: hashed word unigrams and bigrams ([`crate::prompt_features`]), weighted by
//!   sublinear TF-IDF, `(1 + ln tf) * (ln((1 + n) / (1 + df)) + 1)`, with `df` counted over the
//!   `n` warm-up prompts. Only n-grams found in at least two warm-up prompts are kept: one seen
//!   once says nothing about groups, and dropping them keeps the mapper small.
//! * **Clustering**: spherical k-means (cosine similarity, unit-length centroids) with k-means++
//!   seeding from the core's [`Rng`], for every `k` in `2..=max_clusters`, the best of
//!   [`KMEANS_STARTS`] starts (highest cohesion) per `k`. The rule for `k`:
//!   the highest mean silhouette (cosine distance, over the first [`SILHOUETTE_SAMPLE`] warm-up
//!   prompts), the smaller `k` on a tie; if even that silhouette is below `min_silhouette`, the
//!   prompts show no structure and there is one cluster.
//! * **Assignment**: the centroid with the highest dot product with the prompt's TF-IDF vector
//!   (the prompt's own length does not change the winner, so it is not normalized); ties, and a
//!   prompt with no known n-gram, go to the lowest-numbered cluster. Clusters are numbered by
//!   size in the warm-up, largest first, so that such prompts join the largest one.
//!
//! Everything is a function of the warm-up prompts in order, `max_clusters`, `min_silhouette`
//! and the seed: two processes fitting the same prompts get the same mapper bit for bit, and
//! [`PromptContexts::to_bytes`] carries it to a third. Fitting is O(n k nnz) per k-means
//! iteration plus O(s^2 nnz) for the silhouettes; assignment touches each n-gram of the prompt
//! once (a binary search and the few centroids holding it), so it costs microseconds.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::prompt_features::{self, HASH_BITS};
use crate::rng::Rng;

/// The most clusters a mapper may have: the contexts it adds stay few by design (finer
/// clusterings hurt in the study), and fitting tries every `k` up to it, each with a
/// dense centroid per cluster.
pub const MAX_CLUSTERS: usize = 64;
/// Silhouettes are computed over at most this many warm-up prompts (the first ones): the cost is
/// quadratic in it.
pub const SILHOUETTE_SAMPLE: usize = 1_000;
/// N-grams shown per cluster.
pub const TOP_TERMS: usize = 8;
const MIN_DOCUMENT_FREQUENCY: u32 = 2;

/// What assignment reads, derived from the stored arrays (never stored itself): for every slot
/// the range of its centroid entries (empty if the slot was not kept), and each entry's centroid
/// weight times its n-gram's IDF. One read of the 2 MiB table and one of the entries per n-gram,
/// where the stored layout would take a search and four scattered reads.
#[derive(Clone, Debug, PartialEq)]
struct Lookup {
    range: Vec<[u32; 2]>,
    scaled: Vec<f32>,
}

impl Lookup {
    fn new(slots: &[u32], idf: &[f32], offsets: &[u32], weight: &[f32]) -> Self {
        let mut range = vec![[0u32; 2]; 1 << HASH_BITS];
        let mut scaled = vec![0.0; weight.len()];
        for (column, &slot) in slots.iter().enumerate() {
            let (start, end) = (offsets[column], offsets[column + 1]);
            range[slot as usize] = [start, end];
            for e in start as usize..end as usize {
                scaled[e] = weight[e] * idf[column];
            }
        }
        Lookup { range, scaled }
    }
}
const MAX_ITERATIONS: usize = 100;
/// k-means++ starts per `k` (scikit-learn's `n_init`); the one with the highest cohesion (sum
/// of each prompt's cosine to its centroid) is kept.
const KMEANS_STARTS: usize = 5;
const MAGIC: &[u8; 8] = b"PKLMPCX\0";
/// The encoding of [`PromptContexts::to_bytes`] this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// How to fit a mapper.
#[derive(Clone, Debug, PartialEq)]
pub struct FitOptions {
    /// The largest `k` tried (1: no clustering, everything in one cluster).
    pub max_clusters: usize,
    /// Below this best silhouette, the prompts count as one cluster.
    pub min_silhouette: f64,
    /// Seeds the k-means++ draws.
    pub seed: u64,
}

impl FitOptions {
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_CLUSTERS).contains(&self.max_clusters) {
            return Err(Error::parameter(
                "max_clusters",
                self.max_clusters,
                format!("an integer in [1, {MAX_CLUSTERS}]"),
            ));
        }
        if !(self.min_silhouette.is_finite() && (-1.0..=1.0).contains(&self.min_silhouette)) {
            return Err(Error::parameter(
                "min_silhouette",
                self.min_silhouette,
                "a number in [-1, 1]",
            ));
        }
        Ok(())
    }
}

/// One cluster as a person reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    /// Warm-up prompts assigned to it.
    pub size: u64,
    /// Its most characteristic n-grams: the highest centroid weight above the other centroids'
    /// mean, best first.
    pub terms: Vec<String>,
}

/// A fitted prompt-to-cluster mapper. Immutable: assignment takes `&self`, so any number of
/// threads may share one.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptContexts {
    /// Kept feature slots, strictly ascending; a slot's index here is its column.
    slots: Vec<u32>,
    lookup: Lookup,
    idf: Vec<f32>,
    /// Centroid weights by column, compressed: column `j` holds `cluster[offsets[j]..offsets[j+1]]`
    /// with `weight[...]`, so assignment visits only the centroids that have the n-gram.
    offsets: Vec<u32>,
    cluster: Vec<u16>,
    weight: Vec<f32>,
    clusters: Vec<Cluster>,
    silhouette: f64,
    prompts: u64,
}

/// A warm-up prompt as a sparse unit vector: (column, weight), columns ascending.
type Vector = Vec<(u32, f64)>;

impl PromptContexts {
    /// Fit on `prompts`, in order (at least two).
    pub fn fit(prompts: &[&str], options: &FitOptions) -> Result<Self> {
        options.validate()?;
        if prompts.len() < 2 {
            return Err(Error::parameter("warmup", prompts.len(), "at least 2 prompts"));
        }
        let mut names: HashMap<u32, String> = HashMap::new();
        let documents: Vec<Vec<(u32, u32)>> = prompts
            .iter()
            .map(|p| {
                let mut name = |slot: u32, ngram: &str| {
                    names.entry(slot).or_insert_with(|| ngram.to_owned());
                };
                prompt_features::counted(prompt_features::slots(p, Some(&mut name)))
            })
            .collect();
        let mut frequency: HashMap<u32, u32> = HashMap::new();
        for document in &documents {
            for &(slot, _) in document {
                *frequency.entry(slot).or_insert(0) += 1;
            }
        }
        let mut slots: Vec<u32> = frequency
            .iter()
            .filter(|&(_, &df)| df >= MIN_DOCUMENT_FREQUENCY)
            .map(|(&slot, _)| slot)
            .collect();
        slots.sort_unstable();
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let n = prompts.len() as f64;
        let idf: Vec<f64> = slots
            .iter()
            .map(|s| ((1.0 + n) / (1.0 + f64::from(frequency[s]))).ln() + 1.0)
            .collect();
        let vectors: Vec<Vector> = documents.iter().map(|d| unit_vector(d, &slots, &idf)).collect();
        let columns = slots.len();

        let sample = &vectors[..vectors.len().min(SILHOUETTE_SAMPLE)];
        let gram = gram(sample, columns);
        let mut best: Option<(f64, Vec<Vec<f64>>)> = None;
        for k in 2..=options.max_clusters.min(prompts.len() - 1) {
            let mut rng = Rng::seed_from_u64(options.seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            // Several k-means++ starts, keeping the tightest clustering: one start may settle
            // in a local optimum that splits a group or merges two.
            let (mut labels, mut centroids, mut cohesion) = spherical_kmeans(&vectors, columns, k, &mut rng);
            for _ in 1..KMEANS_STARTS {
                let (l, c, s) = spherical_kmeans(&vectors, columns, k, &mut rng);
                if s > cohesion {
                    (labels, centroids, cohesion) = (l, c, s);
                }
            }
            let score = silhouette(&gram, &labels[..sample.len()], k);
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, centroids));
            }
        }
        let (silhouette, centroids) = match best {
            Some((score, centroids)) if score >= options.min_silhouette => (score, centroids),
            best => {
                let mut all = vec![vec![0.0; columns]];
                for v in &vectors {
                    add(&mut all[0], v);
                }
                normalize(&mut all[0]);
                (best.map_or(0.0, |(s, _)| s), all)
            }
        };
        let mut mapper = Self::from_centroids(slots, &idf, &centroids, silhouette, prompts.len());
        mapper.renumber_by_size(prompts, &names, &centroids);
        Ok(mapper)
    }

    fn from_centroids(slots: Vec<u32>, idf: &[f64], centroids: &[Vec<f64>], silhouette: f64, prompts: usize) -> Self {
        let mut offsets = Vec::with_capacity(slots.len() + 1);
        let (mut cluster, mut weight) = (Vec::new(), Vec::new());
        offsets.push(0);
        for column in 0..slots.len() {
            for (c, centroid) in centroids.iter().enumerate() {
                if centroid[column] != 0.0 {
                    #[allow(clippy::cast_possible_truncation)] // c < MAX_CLUSTERS
                    cluster.push(c as u16);
                    #[allow(clippy::cast_possible_truncation)] // stored compactly, by design
                    weight.push(centroid[column] as f32);
                }
            }
            #[allow(clippy::cast_possible_truncation)] // entries <= columns * 64 < 2^32
            offsets.push(cluster.len() as u32);
        }
        #[allow(clippy::cast_possible_truncation)] // stored compactly, by design
        let idf: Vec<f32> = idf.iter().map(|&x| x as f32).collect();
        PromptContexts {
            lookup: Lookup::new(&slots, &idf, &offsets, &weight),
            slots,
            idf,
            offsets,
            cluster,
            weight,
            clusters: vec![
                Cluster {
                    size: 0,
                    terms: Vec::new()
                };
                centroids.len()
            ],
            silhouette,
            prompts: prompts as u64,
        }
    }

    /// Number clusters by warm-up size, largest first (ties: the cluster first met in the
    /// warm-up), and fill in sizes and characteristic n-grams.
    fn renumber_by_size(&mut self, prompts: &[&str], names: &HashMap<u32, String>, centroids: &[Vec<f64>]) {
        let k = centroids.len();
        let mut size = vec![0u64; k];
        let mut first = vec![usize::MAX; k];
        for (i, p) in prompts.iter().enumerate() {
            let c = self.assign(p);
            size[c] += 1;
            first[c] = first[c].min(i);
        }
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by_key(|&c| (std::cmp::Reverse(size[c]), first[c], c));
        let mut new_index = vec![0u16; k];
        for (new, &old) in order.iter().enumerate() {
            #[allow(clippy::cast_possible_truncation)] // k <= MAX_CLUSTERS
            let new = new as u16;
            new_index[old] = new;
        }
        // Re-sort each column's entries by the new numbers, so ties keep meaning "lowest wins".
        for column in 0..self.slots.len() {
            let range = self.offsets[column] as usize..self.offsets[column + 1] as usize;
            let mut entries: Vec<(u16, f32)> = range
                .clone()
                .map(|e| (new_index[self.cluster[e] as usize], self.weight[e]))
                .collect();
            entries.sort_by_key(|&(c, _)| c);
            for (e, (c, w)) in range.zip(entries) {
                self.cluster[e] = c;
                self.weight[e] = w;
            }
        }
        self.clusters = order
            .iter()
            .map(|&old| Cluster {
                size: size[old],
                terms: characteristic(&self.slots, names, centroids, old),
            })
            .collect();
        self.lookup = Lookup::new(&self.slots, &self.idf, &self.offsets, &self.weight);
        // Sizes as the final mapper assigns (a prompt tied between clusters, or with no kept
        // n-gram, now goes to the lowest of the new numbers).
        self.clusters.iter_mut().for_each(|c| c.size = 0);
        for p in prompts {
            let c = self.assign(p);
            self.clusters[c].size += 1;
        }
    }

    /// The cluster of `prompt`, in `0..self.len()`. Never fails: a prompt with no n-gram seen
    /// in the warm-up (an empty one included) goes to cluster 0, the largest.
    #[must_use]
    pub fn assign(&self, prompt: &str) -> usize {
        let mut scores = [0.0f32; MAX_CLUSTERS];
        for (slot, count) in prompt_features::counts(prompt) {
            let [start, end] = self.lookup.range[slot as usize];
            if start == end {
                continue;
            }
            // Most n-grams occur once: skip the logarithm for them.
            #[allow(clippy::cast_precision_loss)] // counts far below 2^24 matter not beyond
            let tf = if count == 1 { 1.0 } else { 1.0 + (count as f32).ln() };
            for e in start as usize..end as usize {
                scores[self.cluster[e] as usize] += tf * self.lookup.scaled[e];
            }
        }
        let mut best = 0;
        for c in 1..self.clusters.len() {
            if scores[c] > scores[best] {
                best = c;
            }
        }
        best
    }

    /// How many clusters (at least one).
    #[must_use]
    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    /// Never true: a fitted mapper has at least one cluster.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    #[must_use]
    pub fn clusters(&self) -> &[Cluster] {
        &self.clusters
    }

    /// The mean silhouette of the chosen `k` (of the best `k` tried when one cluster was kept;
    /// 0 when none was tried).
    #[must_use]
    pub fn silhouette(&self) -> f64 {
        self.silhouette
    }

    /// How many warm-up prompts it was fitted on.
    #[must_use]
    pub fn prompts(&self) -> u64 {
        self.prompts
    }

    /// N-gram slots kept from the warm-up.
    #[must_use]
    pub fn vocabulary(&self) -> usize {
        self.slots.len()
    }

    /// Versioned bytes: magic `PKLMPCX\0`, format (u32), payload length (u64), CRC-32 of the
    /// payload (u32), payload; integers and floats little-endian. No prompt is stored, only
    /// hashed slots, weights and each cluster's few characteristic n-grams.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut p = Vec::new();
        put_u32(&mut p, HASH_BITS);
        put_u64(&mut p, self.prompts);
        p.extend_from_slice(&self.silhouette.to_le_bytes());
        put_len(&mut p, self.slots.len());
        for &s in &self.slots {
            put_u32(&mut p, s);
        }
        for &x in &self.idf {
            p.extend_from_slice(&x.to_le_bytes());
        }
        for &o in &self.offsets {
            put_u32(&mut p, o);
        }
        put_len(&mut p, self.cluster.len());
        for &c in &self.cluster {
            p.extend_from_slice(&c.to_le_bytes());
        }
        for &w in &self.weight {
            p.extend_from_slice(&w.to_le_bytes());
        }
        put_len(&mut p, self.clusters.len());
        for cluster in &self.clusters {
            put_u64(&mut p, cluster.size);
            put_len(&mut p, cluster.terms.len());
            for term in &cluster.terms {
                put_len(&mut p, term.len());
                p.extend_from_slice(term.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(p.len() + 24);
        out.extend_from_slice(MAGIC);
        put_u32(&mut out, FORMAT_VERSION);
        put_u64(&mut out, p.len() as u64);
        put_u32(&mut out, crc32fast::hash(&p));
        out.extend_from_slice(&p);
        out
    }

    /// The mapper [`Self::to_bytes`] wrote; anything truncated, altered, of another format or
    /// inconsistent is an [`Error::Snapshot`], never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |what: &str| Error::snapshot(format!("prompt contexts: {what}"));
        let mut r = Reader { bytes, at: 0 };
        if r.take(8).ok() != Some(MAGIC.as_slice()) {
            return Err(bad("not a prompt-contexts mapper (bad magic)"));
        }
        let version = r.u32()?;
        if version != FORMAT_VERSION {
            return Err(bad(&format!("format {version}, this build reads {FORMAT_VERSION}")));
        }
        let length = r.u64()?;
        let crc = r.u32()?;
        let payload = r.rest();
        if payload.len() as u64 != length {
            return Err(bad("truncated or padded"));
        }
        if crc32fast::hash(payload) != crc {
            return Err(bad("checksum mismatch"));
        }
        let mut r = Reader { bytes: payload, at: 0 };
        if r.u32()? != HASH_BITS {
            return Err(bad("another hash space"));
        }
        let prompts = r.u64()?;
        let silhouette = f64::from_le_bytes(r.array()?);
        let columns = r.len()?;
        let slots = (0..columns).map(|_| r.u32()).collect::<Result<Vec<_>>>()?;
        let idf = (0..columns)
            .map(|_| r.array().map(f32::from_le_bytes))
            .collect::<Result<Vec<_>>>()?;
        let offsets = (0..=columns).map(|_| r.u32()).collect::<Result<Vec<_>>>()?;
        let entries = r.len()?;
        let cluster = (0..entries)
            .map(|_| r.array().map(u16::from_le_bytes))
            .collect::<Result<Vec<_>>>()?;
        let weight = (0..entries)
            .map(|_| r.array().map(f32::from_le_bytes))
            .collect::<Result<Vec<_>>>()?;
        let k = r.len()?;
        let mut clusters = Vec::new();
        for _ in 0..k {
            let size = r.u64()?;
            let terms = (0..r.len()?)
                .map(|_| {
                    let n = r.len()?;
                    String::from_utf8(r.take(n)?.to_vec()).map_err(|_| bad("a term is not UTF-8"))
                })
                .collect::<Result<Vec<_>>>()?;
            clusters.push(Cluster { size, terms });
        }
        if r.at != payload.len() {
            return Err(bad("trailing bytes"));
        }
        let consistent = (1..=MAX_CLUSTERS).contains(&k)
            && slots.windows(2).all(|w| w[0] < w[1])
            && slots.last().is_none_or(|&s| s < (1 << HASH_BITS))
            && idf.iter().all(|x| x.is_finite() && *x > 0.0)
            && offsets.first() == Some(&0)
            && offsets.windows(2).all(|w| w[0] <= w[1])
            && offsets.last().map(|&o| o as usize) == Some(entries)
            && cluster.iter().all(|&c| (c as usize) < k)
            && weight.iter().all(|w| w.is_finite())
            && silhouette.is_finite();
        if !consistent {
            return Err(bad("inconsistent contents"));
        }
        Ok(PromptContexts {
            lookup: Lookup::new(&slots, &idf, &offsets, &weight),
            slots,
            idf,
            offsets,
            cluster,
            weight,
            clusters,
            silhouette,
            prompts,
        })
    }
}

fn unit_vector(document: &[(u32, u32)], slots: &[u32], idf: &[f64]) -> Vector {
    let mut v: Vector = document
        .iter()
        .filter_map(|&(slot, count)| {
            let column = slots.binary_search(&slot).ok()?;
            #[allow(clippy::cast_possible_truncation)] // columns < 2^HASH_BITS
            Some((column as u32, (1.0 + f64::from(count).ln()) * idf[column]))
        })
        .collect();
    let norm = v.iter().map(|(_, x)| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        for (_, x) in &mut v {
            *x /= norm;
        }
    }
    v
}

fn dot(v: &Vector, dense: &[f64]) -> f64 {
    v.iter().map(|&(j, x)| x * dense[j as usize]).sum()
}

fn add(dense: &mut [f64], v: &Vector) {
    for &(j, x) in v {
        dense[j as usize] += x;
    }
}

fn normalize(dense: &mut [f64]) {
    let norm = dense.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        for x in dense {
            *x /= norm;
        }
    }
}

/// Cosine similarities of every pair in `sample` (unit vectors), row-major.
fn gram(sample: &[Vector], columns: usize) -> Vec<f64> {
    let s = sample.len();
    let mut g = vec![0.0; s * s];
    let mut dense = vec![0.0; columns];
    for i in 0..s {
        add(&mut dense, &sample[i]);
        for j in i..s {
            let x = dot(&sample[j], &dense);
            g[i * s + j] = x;
            g[j * s + i] = x;
        }
        for &(j, _) in &sample[i] {
            dense[j as usize] = 0.0;
        }
    }
    g
}

/// Mean silhouette of `labels` (one per sample row of `gram`) with cosine distance `1 - sim`.
fn silhouette(gram: &[f64], labels: &[usize], k: usize) -> f64 {
    let s = labels.len();
    let mut size = vec![0usize; k];
    for &l in labels {
        size[l] += 1;
    }
    let mut total = 0.0;
    let mut sums = vec![0.0; k];
    for i in 0..s {
        sums.iter_mut().for_each(|x| *x = 0.0);
        for j in 0..s {
            if i != j {
                sums[labels[j]] += 1.0 - gram[i * s + j];
            }
        }
        let own = labels[i];
        if size[own] < 2 {
            continue; // a singleton's silhouette is 0 by convention
        }
        #[allow(clippy::cast_precision_loss)]
        let a = sums[own] / (size[own] - 1) as f64;
        #[allow(clippy::cast_precision_loss)]
        let b = (0..k)
            .filter(|&c| c != own && size[c] > 0)
            .map(|c| sums[c] / size[c] as f64)
            .fold(f64::INFINITY, f64::min);
        let m = a.max(b);
        if b.is_finite() && m > 0.0 {
            total += (b - a) / m;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let mean = total / s as f64;
    mean
}

/// Spherical k-means: labels of every vector, the unit centroids, and the cohesion (the sum of
/// each vector's cosine to its centroid, the objective k-means maximizes).
fn spherical_kmeans(vectors: &[Vector], columns: usize, k: usize, rng: &mut Rng) -> (Vec<usize>, Vec<Vec<f64>>, f64) {
    let n = vectors.len();
    // k-means++: each next seed drawn with probability proportional to its squared distance
    // (1 - cosine) to the nearest seed so far.
    let mut centroids: Vec<Vec<f64>> = Vec::with_capacity(k);
    let mut nearest = vec![f64::INFINITY; n];
    let mut seed = rng.below(n);
    for _ in 0..k {
        let mut c = vec![0.0; columns];
        add(&mut c, &vectors[seed]);
        for (i, v) in vectors.iter().enumerate() {
            let d = (1.0 - dot(v, &c)).max(0.0);
            nearest[i] = nearest[i].min(d * d);
        }
        centroids.push(c);
        let total: f64 = nearest.iter().sum();
        seed = if total > 0.0 {
            let mut target = rng.next_f64() * total;
            nearest
                .iter()
                .position(|&d| {
                    target -= d;
                    target < 0.0 && d > 0.0
                })
                .unwrap_or_else(|| nearest.iter().rposition(|&d| d > 0.0).unwrap_or(0))
        } else {
            rng.below(n)
        };
    }
    let mut labels = vec![usize::MAX; n];
    for _ in 0..MAX_ITERATIONS {
        let mut changed = false;
        let mut worst = (f64::INFINITY, 0);
        for (i, v) in vectors.iter().enumerate() {
            let (mut best, mut best_score) = (0, f64::NEG_INFINITY);
            for (c, centroid) in centroids.iter().enumerate() {
                let score = dot(v, centroid);
                if score > best_score {
                    (best, best_score) = (c, score);
                }
            }
            if best_score < worst.0 {
                worst = (best_score, i);
            }
            changed |= labels[i] != best;
            labels[i] = best;
        }
        if !changed {
            break;
        }
        let mut size = vec![0usize; k];
        centroids.iter_mut().for_each(|c| c.iter_mut().for_each(|x| *x = 0.0));
        for (i, v) in vectors.iter().enumerate() {
            add(&mut centroids[labels[i]], v);
            size[labels[i]] += 1;
        }
        for (c, centroid) in centroids.iter_mut().enumerate() {
            if size[c] == 0 {
                // An empty cluster restarts at the prompt its centroid fits worst.
                add(centroid, &vectors[worst.1]);
                labels[worst.1] = c;
            }
            normalize(centroid);
        }
    }
    let cohesion = vectors.iter().zip(&labels).map(|(v, &c)| dot(v, &centroids[c])).sum();
    (labels, centroids, cohesion)
}

/// The n-grams of `cluster` with the highest centroid weight above the mean of the others.
fn characteristic(slots: &[u32], names: &HashMap<u32, String>, centroids: &[Vec<f64>], cluster: usize) -> Vec<String> {
    let k = centroids.len();
    let mut scored: Vec<(f64, u32)> = (0..slots.len())
        .filter_map(|j| {
            let own = centroids[cluster][j];
            #[allow(clippy::cast_precision_loss)]
            let others = if k > 1 {
                (centroids.iter().map(|c| c[j]).sum::<f64>() - own) / (k - 1) as f64
            } else {
                0.0
            };
            let score = own - others;
            #[allow(clippy::cast_possible_truncation)]
            (score > 0.0).then_some((score, j as u32))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored
        .iter()
        .take(TOP_TERMS)
        .filter_map(|&(_, j)| names.get(&slots[j as usize]).cloned())
        .collect()
}

fn put_u32(out: &mut Vec<u8>, x: u32) {
    out.extend_from_slice(&x.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, x: u64) {
    out.extend_from_slice(&x.to_le_bytes());
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    put_u64(out, n as u64);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| Error::snapshot("prompt contexts: truncated"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// A count, refused if it could not fit in what is left (so no huge allocation is tried).
    fn len(&mut self) -> Result<usize> {
        let n = self.u64()?;
        let left = (self.bytes.len() - self.at) as u64;
        if n > left {
            return Err(Error::snapshot("prompt contexts: a length beyond the data"));
        }
        #[allow(clippy::cast_possible_truncation)] // <= a slice length
        Ok(n as usize)
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.at..];
        self.at = self.bytes.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three tasks, `per` prompts each, interleaved: each prompt is its task's fixed words plus
    /// two filler words from a pool all tasks share, so the only structure is the task.
    fn three_tasks(per: usize) -> Vec<String> {
        let tasks = [
            "write a python function that returns",
            "what is the derivative of the polynomial",
            "which painter made the portrait of",
        ];
        let filler = [
            "apple", "river", "seven", "green", "table", "cloud", "stone", "music", "north", "paper", "light",
        ];
        let mut out = Vec::new();
        for i in 0..per {
            for (t, task) in tasks.iter().enumerate() {
                let (a, b) = (filler[(i * 3 + t) % 11], filler[(i * 7 + 2 * t + 1) % 11]);
                out.push(format!("{task} {a} {b}"));
            }
        }
        out
    }

    fn options(max_clusters: usize) -> FitOptions {
        FitOptions {
            max_clusters,
            min_silhouette: 0.1,
            seed: 7,
        }
    }

    fn fit(prompts: &[String], options: &FitOptions) -> PromptContexts {
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        PromptContexts::fit(&refs, options).unwrap()
    }

    #[test]
    fn finds_three_separable_tasks() {
        let prompts = three_tasks(20);
        let mapper = fit(&prompts, &options(8));
        assert_eq!(mapper.len(), 3, "silhouette {}", mapper.silhouette());
        // Every prompt of one task lands in the same cluster, each task in its own.
        let labels: Vec<usize> = prompts.iter().map(|p| mapper.assign(p)).collect();
        for task in 0..3 {
            let c = labels[task];
            assert!(labels.iter().skip(task).step_by(3).all(|&l| l == c));
        }
        assert_ne!(labels[0], labels[1]);
        assert_ne!(labels[1], labels[2]);
        assert_ne!(labels[0], labels[2]);
        assert_eq!(mapper.clusters().iter().map(|c| c.size).sum::<u64>(), 60);
        assert!(mapper.clusters().iter().all(|c| !c.terms.is_empty()));
        // A new prompt of the maths task joins the maths cluster.
        assert_eq!(mapper.assign("the derivative of x squared"), labels[1]);
    }

    #[test]
    fn one_cluster_without_structure_or_when_asked() {
        let prompts = three_tasks(20);
        assert_eq!(fit(&prompts, &options(1)).len(), 1);
        // The same prompt repeated: no pair differs, so no k separates anything.
        let same: Vec<String> = (0..30).map(|_| "the same words again".to_owned()).collect();
        assert_eq!(fit(&same, &options(8)).len(), 1);
    }

    #[test]
    fn same_prompts_same_seed_same_mapper() {
        let prompts = three_tasks(15);
        let (a, b) = (fit(&prompts, &options(6)), fit(&prompts, &options(6)));
        assert_eq!(a, b);
        assert_eq!(a.to_bytes(), b.to_bytes());
    }

    #[test]
    fn bytes_round_trip_and_damage_is_refused() {
        let mapper = fit(&three_tasks(10), &options(5));
        let bytes = mapper.to_bytes();
        let back = PromptContexts::from_bytes(&bytes).unwrap();
        assert_eq!(back, mapper);
        for p in three_tasks(12) {
            assert_eq!(back.assign(&p), mapper.assign(&p));
        }
        for cut in [0, 7, 20, bytes.len() - 1] {
            assert!(PromptContexts::from_bytes(&bytes[..cut]).is_err());
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 1;
        assert!(PromptContexts::from_bytes(&flipped).is_err());
    }

    #[test]
    fn unknown_or_empty_prompts_go_to_cluster_zero() {
        let mapper = fit(&three_tasks(10), &options(5));
        assert_eq!(mapper.assign(""), 0);
        assert_eq!(mapper.assign("zzz qqq"), 0);
    }

    #[test]
    fn bad_options_and_too_few_prompts_are_refused() {
        let prompts = ["a b", "c d"];
        assert!(PromptContexts::fit(&prompts, &options(0)).is_err());
        assert!(PromptContexts::fit(&prompts, &options(MAX_CLUSTERS + 1)).is_err());
        let nan = FitOptions {
            min_silhouette: f64::NAN,
            ..options(2)
        };
        assert!(PromptContexts::fit(&prompts, &nan).is_err());
        assert!(PromptContexts::fit(&prompts[..1], &options(2)).is_err());
        assert_eq!(PromptContexts::fit(&prompts, &options(4)).unwrap().len(), 1);
    }
}
