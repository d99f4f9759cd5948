import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import { type Context, Hono } from 'hono';
import type { OperatorRole } from '../auth.js';

const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

/** `GET /api/v2/whoami`: the signed-in token's role, for the UI's sign-in (mounted under /api/v2). */
export function whoamiRoutes(): Hono<{ Variables: { operator: OperatorRole } }> {
  const app = new Hono<{ Variables: { operator: OperatorRole } }>();
  app.get('/whoami', (c) => c.json({ role: c.get('operator') }));
  return app;
}

/**
 * The web UI (services/gateway/ui, built by infra/ui-build.mjs) at `/`: files of the build by path,
 * `index.html` for every other page path (the UI routes in the browser). Hashed assets are cached for
 * good; index.html is checked every time, so a rebuilt UI is picked up at the next load.
 */
export function uiRoutes(opts: { dir: string | undefined }): Hono {
  const app = new Hono();
  const root = opts.dir ? normalize(opts.dir) : undefined;
  const missing = (c: Context) =>
    c.html(
      '<!doctype html><title>Crowbar</title><p>The web UI is not built. <code>npm start</code> builds it; ' +
        'or run <code>node infra/ui-build.mjs</code> and set <code>CROWBAR_UI_DIR</code> to the directory it prints.</p>',
      503,
    );
  app.get('*', async (c, next) => {
    if (c.req.path.startsWith('/api/')) return next();
    if (!root) return missing(c);
    let rel: string;
    try {
      rel = decodeURIComponent(c.req.path).replace(/^\/+/, '');
    } catch {
      return c.text('bad path: not valid percent-encoding', 400);
    }
    const file = normalize(join(root, rel));
    const inside = file === root || file.startsWith(root + sep);
    const asset = inside && rel !== '' && !rel.includes('\0') ? await stat(file).catch(() => null) : null;
    if (asset?.isFile()) {
      const immutable = rel.startsWith('assets/');
      return c.body(await readFile(file), 200, {
        'content-type': types[extname(file)] ?? 'application/octet-stream',
        'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      });
    }
    // A missing asset is a 404; any other path is a page of the UI.
    if (rel.startsWith('assets/')) return c.text('not found', 404);
    const index = await readFile(join(root, 'index.html')).catch(() => null);
    if (!index) return missing(c);
    return c.body(index, 200, {
      'content-type': types['.html']!,
      'cache-control': 'no-cache',
      'content-security-policy':
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'",
      'x-content-type-options': 'nosniff',
    });
  });
  return app;
}
