/**
 * The bench's micro section runs the product's own code outside the product; these keep it runnable when
 * that code changes (the policy service's store once gained a member the bench's stand-in lacked, and
 * `npm run bench` failed its micro section while every other test passed).
 */
import { describe, expect, it } from 'vitest';
import { benchPolicy, benchPolicyService } from '../bench/micro-policy.js';
import { benchFormatter } from '../bench/micro-format.js';

describe('bench micro section', () => {
  it('times the Cedar engine and the policy service the product decides with', async () => {
    const engine = benchPolicy({ iterations: 50 });
    expect(engine.usPerDecision).toBeGreaterThan(0);
    const service = await benchPolicyService({ iterations: 200 });
    expect(service.usPerDecision).toBeGreaterThan(0);
  });

  it('times the formatter', () => {
    expect(benchFormatter({ seconds: 0.2 }).mbPerSec).toBeGreaterThan(0);
  });
});
