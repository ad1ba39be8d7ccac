/** Create the quickstart notebook from the server's template. */

import type { Contents } from '@jupyterlab/services';

import type { Fetcher, ITemplate } from './api';

/** The first free name: `a.ipynb`, `a-1.ipynb`, `a-2.ipynb`, ... */
export function freeName(name: string, taken: ReadonlySet<string>): string {
  if (!taken.has(name)) {
    return name;
  }
  const dot = name.lastIndexOf('.');
  const stem = dot > 0 ? name.slice(0, dot) : name;
  const ext = dot > 0 ? name.slice(dot) : '';
  for (let i = 1; ; i++) {
    const candidate = `${stem}-${i}${ext}`;
    if (!taken.has(candidate)) {
      return candidate;
    }
  }
}

/** Join a directory and a file name as a contents-API path ('' is the server root). */
export function joinPath(dir: string, name: string): string {
  const d = dir.replace(/\/+$/, '');
  return d ? `${d}/${name}` : name;
}

/**
 * Fetch the template and save it under a free name in `dir`.
 * @returns the new notebook's path
 */
export async function createQuickstart(fetch: Fetcher, contents: Contents.IManager, dir: string): Promise<string> {
  const template = await fetch<ITemplate>('template');
  const listing = await contents.get(dir, { content: true });
  const taken = new Set<string>(
    Array.isArray(listing.content) ? (listing.content as Contents.IModel[]).map(m => m.name) : []
  );
  const path = joinPath(dir, freeName(template.name || 'lora_nb_quickstart.ipynb', taken));
  await contents.save(path, {
    type: 'notebook',
    format: 'json',
    content: template.content
  });
  return path;
}
