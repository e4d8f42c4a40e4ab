//! The mix a phone hears: the room's loudest speakers, each phone's own voice taken out
//! ("mix-minus"), so a phone never hears itself. Speakers are chosen *before* decoding,
//! from the RFC 6464 levels their packets carry, so only the chosen few are decoded.

/// The keys of at most `n` sources to mix, loudest first (a lower RFC 6464 level is
/// louder). Sources at `silence` or quieter are left out; ties keep the input order.
pub fn loudest<K: Copy>(levels: &[(K, u8)], n: usize, silence: u8) -> Vec<K> {
    let mut audible: Vec<(usize, K, u8)> = levels
        .iter()
        .enumerate()
        .filter(|(_, (_, l))| *l < silence)
        .map(|(i, (k, l))| (i, *k, *l))
        .collect();
    audible.sort_by_key(|(i, _, l)| (*l, *i));
    audible.into_iter().take(n).map(|(_, k, _)| k).collect()
}

/// The sum of one frame interval's chosen speakers, kept wide so that taking one out is
/// exact; rendered per listener with saturation.
#[derive(Debug, Clone)]
pub struct Mix {
    sum: Vec<i32>,
    sources: usize,
}

impl Mix {
    /// A silent mix of `samples` per frame.
    pub fn new(samples: usize) -> Self {
        Mix {
            sum: vec![0; samples],
            sources: 0,
        }
    }

    pub fn samples(&self) -> usize {
        self.sum.len()
    }

    /// How many frames were added since the last clear.
    pub fn sources(&self) -> usize {
        self.sources
    }

    pub fn clear(&mut self) {
        self.sum.iter_mut().for_each(|s| *s = 0);
        self.sources = 0;
    }

    /// Add a decoded frame (shorter frames are zero-padded, longer ones cut).
    pub fn add(&mut self, pcm: &[i16]) {
        for (s, x) in self.sum.iter_mut().zip(pcm) {
            *s += i32::from(*x);
        }
        self.sources += 1;
    }

    /// What a listener hears into `out`: the mix, less `own` (the listener's frame, when
    /// it was added), clipped to 16 bits.
    pub fn render(&self, own: Option<&[i16]>, out: &mut [i16]) {
        for (i, (o, s)) in out.iter_mut().zip(&self.sum).enumerate() {
            let mine = own.and_then(|f| f.get(i)).map_or(0, |x| i32::from(*x));
            *o = (s - mine).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loudest_are_chosen_and_silence_is_not() {
        let levels = [("a", 40), ("b", 20), ("c", 127), ("d", 30), ("e", 20)];
        assert_eq!(loudest(&levels, 3, 127), ["b", "e", "d"]);
        assert_eq!(loudest(&levels, 10, 127), ["b", "e", "d", "a"]);
        assert_eq!(loudest(&levels, 10, 35), ["b", "e", "d"]);
        assert!(loudest(&levels, 0, 127).is_empty());
    }

    #[test]
    fn nobody_hears_themselves_and_the_sum_saturates() {
        let a = [1_000i16, -1_000, 30_000];
        let b = [500i16, 500, 10_000];
        let mut m = Mix::new(3);
        m.add(&a);
        m.add(&b);
        assert_eq!(m.sources(), 2);
        let mut out = [0i16; 3];
        m.render(Some(&a), &mut out);
        assert_eq!(out, b, "a hears b only");
        m.render(Some(&b), &mut out);
        assert_eq!(out, a, "b hears a only");
        m.render(None, &mut out);
        assert_eq!(
            out,
            [1_500, -500, i16::MAX],
            "a listener who is not mixed hears both, clipped"
        );
        m.clear();
        m.render(None, &mut out);
        assert_eq!(out, [0, 0, 0], "silence when nobody speaks");
    }

    #[test]
    fn short_frames_are_padded() {
        let mut m = Mix::new(4);
        m.add(&[7, 7]);
        let mut out = [9i16; 4];
        m.render(None, &mut out);
        assert_eq!(out, [7, 7, 0, 0]);
    }
}
