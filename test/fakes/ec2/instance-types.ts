/** The instance types the fake accepts, with their vCPUs, memory and architecture. */

export interface InstanceTypeInfo {
  cpus: number;
  memoryMiB: number;
  architecture: 'x86_64' | 'arm64';
}

const BURSTABLE: Record<string, [number, number]> = {
  nano: [2, 0.5],
  micro: [2, 1],
  small: [2, 2],
  medium: [2, 4],
  large: [2, 8],
  xlarge: [4, 16],
  '2xlarge': [8, 32],
};

const SIZES: Record<string, number> = {
  large: 2,
  xlarge: 4,
  '2xlarge': 8,
  '4xlarge': 16,
  '8xlarge': 32,
  '12xlarge': 48,
  '16xlarge': 64,
  '24xlarge': 96,
};

/** GiB of memory per vCPU by family letter. */
const MEMORY_PER_CPU: Record<string, number> = { m: 4, c: 2, r: 8 };

const X86 = ['m5', 'm5a', 'm6i', 'm6a', 'm7i', 'm7a', 'c5', 'c5a', 'c6i', 'c6a', 'c7i', 'c7a', 'r5', 'r6i', 'r7i'];
const ARM = ['m6g', 'm7g', 'm8g', 'c6g', 'c7g', 'c8g', 'r6g', 'r7g', 'r8g'];

export function instanceTypeInfo(type: string): InstanceTypeInfo | undefined {
  // EC2's default when RunInstances names no InstanceType.
  if (type === 'm1.small') return { cpus: 1, memoryMiB: 1740, architecture: 'x86_64' };
  const [family, size] = type.split('.');
  if (!family || !size) return undefined;
  if (family === 't3' || family === 't3a' || family === 't4g') {
    const spec = BURSTABLE[size];
    if (!spec) return undefined;
    return { cpus: spec[0], memoryMiB: spec[1] * 1024, architecture: family === 't4g' ? 'arm64' : 'x86_64' };
  }
  const arm = ARM.includes(family);
  if (!arm && !X86.includes(family)) return undefined;
  const perCpu = MEMORY_PER_CPU[family[0] ?? ''] ?? 4;
  const cpus = size === 'medium' && arm ? 1 : SIZES[size];
  if (cpus === undefined) return undefined;
  return { cpus, memoryMiB: cpus * perCpu * 1024, architecture: arm ? 'arm64' : 'x86_64' };
}
