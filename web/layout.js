// Where the tiles go. Grid view: every tile the same size, as many columns as give the
// largest 16:9 tiles in the space there is. Stage: one tile large (a screen share, or in
// speaker view the active speaker) with the others in a strip below it. Tile sizes are
// what the SDK reports to the server, so they select the simulcast layers.

const GAP = 12;
const STRIP_MAX = 240;

/** The widest 16:9 tile that fits `n` of them in W × H. */
export function gridWidth(n, W, H) {
  let best = 0;
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const w = Math.min((W - GAP * (cols - 1)) / cols, ((H - GAP * (rows - 1)) / rows) * 16 / 9);
    best = Math.max(best, w);
  }
  return Math.floor(best);
}

/** The stage's width and the strip's tile width for `others` tiles under it, in W × H. */
export function stageWidths(others, W, H) {
  const strip = others ? Math.floor(Math.min(STRIP_MAX, (W - GAP * (others - 1)) / others, H / 4 * 16 / 9)) : 0;
  const below = others ? strip * 9 / 16 + GAP : 0;
  return { stage: Math.floor(Math.min(W, (H - below) * 16 / 9)), strip };
}

/**
 * Lay out `grid`'s tiles in `main`. `featured` is the tile to put on the stage, or null
 * for the grid. `fixed` (the ?tile= test parameter) sets every tile's width instead.
 */
export function layout(main, grid, featured, fixed) {
  const tiles = [...grid.querySelectorAll('.tile')];
  for (const t of tiles) t.classList.toggle('featured', t === featured);
  grid.classList.toggle('staged', !!featured);
  if (!tiles.length) return;
  if (fixed) {
    for (const t of tiles) t.style.width = `${fixed}px`;
    return;
  }
  const pad = getComputedStyle(main);
  const W = main.clientWidth - parseFloat(pad.paddingLeft) - parseFloat(pad.paddingRight);
  const H = main.clientHeight - parseFloat(pad.paddingTop) - parseFloat(pad.paddingBottom);
  if (!featured) {
    const w = gridWidth(tiles.length, W, H);
    for (const t of tiles) t.style.width = `${w}px`;
    return;
  }
  const { stage, strip } = stageWidths(tiles.length - 1, W, H);
  for (const t of tiles) t.style.width = `${t === featured ? stage : strip}px`;
}
