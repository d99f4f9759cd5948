import { request } from 'node:http';

export interface RawResponse {
  status: number;
  body: Buffer;
  headers: Record<string, string | string[] | undefined>;
}

/** A GET with the path sent exactly as given (fetch would normalise `..` out of it before sending). */
export function rawGet(
  base: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const req = request({ host: u.hostname, port: u.port, path, method: 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}
