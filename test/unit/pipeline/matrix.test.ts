import { describe, expect, it } from 'vitest';
import { loadDefinition } from '../../../src/definition/load.js';
import { buildMatrix, parseShard, shardOf } from '../../../src/pipeline/matrix.js';

const sourcegraph = await loadDefinition('images/sourcegraph.yaml');
const ids = (request: Parameters<typeof buildMatrix>[1]) => buildMatrix(sourcegraph, request, { runId: 'rmatrix01' }).map((p) => `${p.target}-${p.size}`);

describe('build matrix', () => {
  it('expands targets x sizes in a stable order', () => {
    expect(ids({ targets: 'gcp,aws', sizes: 'm,xs', version: '5.2.0' })).toEqual(['gcp-XS', 'gcp-M', 'aws-XS', 'aws-M']);
    expect(ids({ targets: 'all', sizes: 'all', version: '5.2.0' })).toHaveLength(20);
  });

  it('splits into disjoint shards that cover the matrix', () => {
    const all = ids({ targets: 'aws,gcp,azure', sizes: 'all', version: '5.2.0' });
    const shards = [1, 2, 3, 4].map((i) => ids({ targets: 'aws,gcp,azure', sizes: 'all', version: '5.2.0', shard: `${i}/4` }));
    expect(shards.flat().sort()).toEqual([...all].sort());
    expect(shards.map((s) => s.length)).toEqual([4, 4, 4, 3]);
    expect(shards[0]).toEqual(['aws-XS', 'aws-XL', 'gcp-L', 'azure-M']);
  });

  it.each(['0/4', '5/4', '1/0', 'a/b', '1-4'])('refuses the shard %j', (shard) => {
    expect(() => parseShard(shard)).toThrow(/--shard: expected i\/n with 1 <= i <= n/);
  });

  it('shards an empty list to empty lists', () => {
    expect(shardOf([], { index: 1, count: 3 })).toEqual([]);
  });

  it('refuses an unknown target in the list', () => {
    expect(() => ids({ targets: 'aws,ibm', sizes: 'xs', version: '5.2.0' })).toThrow('--target: expected one of aws, azure, gcp, local, found "ibm"');
  });
});
