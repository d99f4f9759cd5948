import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { gatewayService } from '../services/gateway/service.js';
import { baseConfigSchema, ConfigError, parseConfig } from '../shared/config.js';
import { loadServiceConfig } from '../shared/service/host.js';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('config', () => {
  it('uses defaults when nothing is set', () => {
    const c = parseConfig(baseConfigSchema, {});
    expect(c.NATS_URL).toBe('nats://127.0.0.1:4222');
    expect(c.CROWBAR_BUS_PREFIX).toBe('crowbar');
  });

  it('lists every bad variable at once', () => {
    try {
      loadServiceConfig(gatewayService, {
        NATS_URL: 'not a url',
        CROWBAR_HTTP_PORT: '99999',
        LOG_LEVEL: 'loud',
      });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const msg = (e as ConfigError).message;
      expect(msg).toMatch(/NATS_URL must be a nats:\/\/ URL.*\(got "not a url"\)/);
      expect(msg).toMatch(/CROWBAR_HTTP_PORT must be an integer from 0 to 65535/);
      expect(msg).toMatch(/LOG_LEVEL/);
    }
  });

  it('a service started with NATS_URL=not a url exits 2 naming the variable', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', `${root}services/inventory/index.ts`], {
      env: { ...process.env, NATS_URL: 'not a url' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/inventory: invalid configuration: NATS_URL must be a nats:\/\/ URL/);
  });
});
