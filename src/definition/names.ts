/**
 * Resource and image names, valid under each cloud's rules. Resources are named
 * `kiln-<run id>-<size>-<purpose>`; images carry the product name, version and size so people can
 * read them. A name that cannot be made valid is an input error, never silently mangled.
 */
import { InputError } from '../core/errors.js';
import type { SizeName, TargetName } from './schema.js';

/** Run ids: lowercase letters and digits, starting with a letter, 6 to 16 characters. */
export const RUN_ID = /^[a-z][a-z0-9]{5,15}$/;

export interface NameRule {
  pattern: RegExp;
  maxLength: number;
  describe: string;
}

export const NAME_RULES = {
  /** EC2 AMI names: 3-128 characters of letters, digits, ( ) [ ] . / - ' @ _ and space. */
  ami: { pattern: /^[A-Za-z0-9()[\]./\-'@_ ]{3,128}$/, maxLength: 128, describe: "3-128 letters, digits and ()[] ./-'@_" },
  /** EC2 key pair and security group names: up to 255 ASCII characters. */
  ec2: { pattern: /^[A-Za-z0-9._\-:/()#,@[\]+=&;{}!$*]{1,255}$/, maxLength: 255, describe: 'up to 255 ASCII characters' },
  /** GCE resource names (RFC 1035). */
  gce: { pattern: /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/, maxLength: 63, describe: 'lowercase letters, digits and "-", starting with a letter, at most 63 characters' },
  /** Azure resource names (most compute/network resources). */
  azure: { pattern: /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$/, maxLength: 80, describe: 'letters, digits, "_", "." and "-", at most 80 characters, ending with a letter, digit or "_"' },
  /** Azure Compute Gallery image versions. */
  galleryVersion: { pattern: /^\d{1,9}\.\d{1,9}\.\d{1,9}$/, maxLength: 32, describe: 'MAJOR.MINOR.PATCH (digits only, no pre-release)' },
  /** Local artifacts are files. */
  file: { pattern: /^[A-Za-z0-9._-]{1,200}$/, maxLength: 200, describe: 'letters, digits, ".", "_" and "-"' },
} satisfies Record<string, NameRule>;

export type NameKind = keyof typeof NAME_RULES;

export function isValidName(kind: NameKind, name: string): boolean {
  const rule = NAME_RULES[kind];
  return name.length <= rule.maxLength && rule.pattern.test(name);
}

/** Returns `name` if valid for `kind`, else throws an InputError saying why and naming the field. */
export function checkedName(kind: NameKind, name: string, field: string): string {
  if (isValidName(kind, name)) return name;
  const rule = NAME_RULES[kind];
  const length = name.length > rule.maxLength ? ` (${name.length} characters; shorten the definition name)` : '';
  throw new InputError({ field, message: `"${name}" is not a valid ${kind} name: expected ${rule.describe}${length}` });
}

export interface NameParts {
  runId: string;
  definition: string;
  target: TargetName;
  size: SizeName;
  version: string;
}

export function buildId(parts: Pick<NameParts, 'runId' | 'target' | 'size'>): string {
  return `${parts.runId}-${parts.target}-${parts.size.toLowerCase()}`;
}

/** `kiln-<run id>-<size>-<purpose>`: the name of a temporary resource. */
export function resourceName(parts: Pick<NameParts, 'runId' | 'size'>, purpose: string): string {
  return `kiln-${parts.runId}-${parts.size.toLowerCase()}-${purpose}`;
}

/** `sourcegraph-5.2.0-xs-<run id>`, with dots turned to dashes where the cloud forbids them. */
export function imageName(parts: NameParts, options: { dots: boolean; suffix?: string }): string {
  const version = options.dots ? parts.version : parts.version.replace(/[.]/g, '-').toLowerCase();
  const suffix = options.suffix ? `-${options.suffix}` : '';
  return `${parts.definition}-${version}-${parts.size.toLowerCase()}-${parts.runId}${suffix}`;
}
