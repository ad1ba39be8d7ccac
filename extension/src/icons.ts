import { LabIcon } from '@jupyterlab/ui-components';

/** A small "training curve" glyph for the runs sidebar tab and the launcher card. */
const RUNS_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M3 3h2v16h16v2H3z"/>
    <path d="M7.4 16.6 6 15.2l4.2-6.1 3.3 2.8 4.3-6.6 1.7 1.1-5.5 8.4-3.3-2.8z"/>
    <circle cx="20" cy="14" r="1.6"/>
    <circle cx="16" cy="16" r="1.6"/>
  </g>
</svg>`;

export const loraRunsIcon = new LabIcon({
  name: 'lora-nb:runs',
  svgstr: RUNS_SVG
});

/** A coloured version for the launcher card (the Notebook category shows an image there). */
const CARD_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="52" height="52" viewBox="0 0 24 24">
  <path fill="#616161" d="M3 3h2v16h16v2H3z"/>
  <path fill="#f37726" d="M7.4 16.6 6 15.2l4.2-6.1 3.3 2.8 4.3-6.6 1.7 1.1-5.5 8.4-3.3-2.8z"/>
  <circle fill="#1976d2" cx="20" cy="14" r="1.6"/>
  <circle fill="#1976d2" cx="16" cy="16" r="1.6"/>
</svg>`;

export const launcherIconUrl = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(CARD_SVG)}`;
