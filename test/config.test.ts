/** The environment Wharf reads (SPEC §3): defaults, and a clear error naming each bad variable. */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseEnv } from '../lib/config.js';

describe('configuration from the environment', () => {
  it('fills in the defaults, treating an empty value as unset', () => {
    const env = parseEnv({ WHARF_PORT: '', WHARF_WORKFLOW_CACHE_SIZE: '' });
    expect(env).toMatchObject({
      WHARF_PORT: 8080,
      WHARF_TASK_QUEUE: 'wharf',
      WHARF_WORKFLOW_CACHE_SIZE: 250,
      LOG_LEVEL: 'info',
    });
  });

  it('takes a workflow cache size as a whole number', () => {
    expect(parseEnv({ WHARF_WORKFLOW_CACHE_SIZE: '1000' }).WHARF_WORKFLOW_CACHE_SIZE).toBe(1000);
  });

  it('takes the idle minutes of a chat and the seconds between memory trims (0: no trims)', () => {
    expect(parseEnv({})).toMatchObject({ WHARF_CHAT_IDLE_MINUTES: 10, WHARF_MEMORY_TRIM_SECONDS: 10 });
    expect(parseEnv({ WHARF_MEMORY_TRIM_SECONDS: '0' }).WHARF_MEMORY_TRIM_SECONDS).toBe(0);
    for (const v of ['-1', '1.5', 'abc', '1%00', '86401'])
      expect(() => parseEnv({ WHARF_MEMORY_TRIM_SECONDS: v }), v).toThrow(/WHARF_MEMORY_TRIM_SECONDS/);
    for (const v of ['0', 'abc', '99999'])
      expect(() => parseEnv({ WHARF_CHAT_IDLE_MINUTES: v }), v).toThrow(/WHARF_CHAT_IDLE_MINUTES/);
  });

  it('takes metrics addresses as host:port and ports, and leaves metrics off by default', () => {
    expect(parseEnv({})).not.toHaveProperty('WHARF_METRICS_ADDRESS');
    expect(parseEnv({ WHARF_METRICS_ADDRESS: '127.0.0.1:9464', WHARF_TEMPORAL_METRICS_PORT: '9465' })).toMatchObject({
      WHARF_METRICS_ADDRESS: '127.0.0.1:9464',
      WHARF_TEMPORAL_METRICS_PORT: 9465,
    });
    expect(parseEnv({ WHARF_METRICS_ADDRESS: '[::1]:9464' }).WHARF_METRICS_ADDRESS).toBe('[::1]:9464');
    expect(() => parseEnv({ WHARF_METRICS_ADDRESS: '9464' })).toThrow(/WHARF_METRICS_ADDRESS[\s\S]*host:port/);
  });

  it('names every bad variable in one error', () => {
    const bad = (): unknown => parseEnv({ WHARF_PORT: '99999', WHARF_WORKFLOW_CACHE_SIZE: '0', LOG_LEVEL: 'loud' });
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/WHARF_PORT[\s\S]*WHARF_WORKFLOW_CACHE_SIZE[\s\S]*LOG_LEVEL/);
  });
});
