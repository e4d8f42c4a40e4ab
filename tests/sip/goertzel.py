"""The share of a recording's energy at given frequencies (Goertzel, 100 ms blocks, the
median over the blocks of a window): how a test tells whose tone a phone heard."""
import math
import statistics
import struct
import wave


def shares(path, freqs, start=None, end=None):
    """Over seconds [start, end) of the recording (default: after its first quarter)."""
    w = wave.open(path)
    rate, ch = w.getframerate(), w.getnchannels()
    raw = w.readframes(w.getnframes())
    x = struct.unpack("<%dh" % (len(raw) // 2), raw)[::ch]
    if start is None:
        x = x[len(x) // 4:]
    else:
        x = x[int(start * rate):int(end * rate) if end else len(x)]
    n = rate // 10
    blocks = [x[i:i + n] for i in range(0, len(x) - n + 1, n)]
    # Blocks of silence (before media, after hang-up) say nothing about who was heard.
    blocks = [b for b in blocks if math.sqrt(sum(v * v for v in b) / len(b)) > 100]

    def share(b, hz):
        c = 2 * math.cos(2 * math.pi * hz / rate)
        s1 = s2 = 0.0
        for v in b:
            s1, s2 = v + c * s1 - s2, s1
        e = sum(v * v for v in b) or 1
        return 2 * (s1 * s1 + s2 * s2 - c * s1 * s2) / (len(b) * e)

    if not blocks:
        return {hz: 0.0 for hz in freqs}, 0
    return {hz: statistics.median(share(b, hz) for b in blocks) for hz in freqs}, len(blocks)
