import { describe, expect, it } from 'vitest';
import { checkedName, imageName, isValidName, resourceName } from '../../../src/definition/names.js';
import { newRunId } from '../../../src/pipeline/run-id.js';
import { RUN_ID } from '../../../src/definition/names.js';

const parts = { runId: 'rabc123', definition: 'sourcegraph', target: 'gcp' as const, size: 'XS' as const, version: '5.2.0' };

describe('names', () => {
  it('makes readable image names per cloud', () => {
    expect(imageName(parts, { dots: true })).toBe('sourcegraph-5.2.0-xs-rabc123');
    expect(imageName(parts, { dots: false, suffix: 'data' })).toBe('sourcegraph-5-2-0-xs-rabc123-data');
    expect(resourceName(parts, 'builder')).toBe('kiln-rabc123-xs-builder');
  });

  it.each([
    ['gce', 'sourcegraph-5-2-0-xs-rabc123', true],
    ['gce', 'sourcegraph-5.2.0-xs', false],
    ['gce', 'Sourcegraph', false],
    ['gce', '1sourcegraph', false],
    ['gce', 'a'.repeat(63), true],
    ['gce', 'a'.repeat(64), false],
    ['gce', 'ends-with-', false],
    ['ami', 'sourcegraph-5.2.0-xs (rc) [1]', true],
    ['ami', 'ab', false],
    ['ami', 'a'.repeat(129), false],
    ['ami', 'no+plus', false],
    ['azure', 'sourcegraph-5.2.0-xs', true],
    ['azure', 'ends.with.dot.', false],
    ['azure', '-starts-with-dash', false],
    ['azure', 'a'.repeat(81), false],
    ['galleryVersion', '5.2.0', true],
    ['galleryVersion', '5.2.0-rc.1', false],
    ['galleryVersion', '5.2', false],
    ['file', 'sourcegraph-5.2.0-xs.qcow2', true],
    ['file', '../etc/passwd', false],
  ] as const)('%s: %j valid=%s', (kind, name, valid) => {
    expect(isValidName(kind, name)).toBe(valid);
  });

  it('says why a name is invalid', () => {
    expect(() => checkedName('gce', `a${'b'.repeat(70)}`, 'name')).toThrow(/not a valid gce name: .*\(71 characters; shorten the definition name\)/);
  });

  it('makes run ids every cloud accepts', () => {
    const ids = new Set(Array.from({ length: 50 }, () => newRunId()));
    expect(ids.size).toBe(50);
    for (const id of ids) {
      expect(id).toMatch(RUN_ID);
      expect(isValidName('gce', resourceName({ runId: id, size: 'XL' }, 'builder'))).toBe(true);
    }
  });
});
