import path from 'node:path';

/** `p` is `root` or below it (both absolute and resolved; symlinks are the caller's to resolve first). */
export function within(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}
