/**
 * The checks a booted image must pass, resolved into the plan: kiln's own, derived from what the
 * definition configures (boot unit, K3s, version files, data volume and its bind mounts, sysctls,
 * the registry mirror, firewall, no identity left from the build), then the definition's `checks`. Pure data: `kiln plan`
 * prints them, and the validator runs them over SSH with sudo.
 *
 * No value from the definition is pasted into a command: each reaches its check as an environment
 * variable. `KILN_VALIDATION_KEY` is added at run time (the validation instance's public key body).
 */
import { createHash } from 'node:crypto';
import type { PlannedCheck } from '../definition/plan.js';
import { registriesConfig } from '../provision/steps.js';
import type { Definition } from '../definition/schema.js';

/** Runtime variable: the base64 body of the only SSH key that may be authorized on the instance. */
export const VALIDATION_KEY_ENV = 'KILN_VALIDATION_KEY';

export function plannedChecks(definition: Definition, version: string): PlannedCheck[] {
  const { dataVolume, versionPinning, host, k3s } = definition;
  const kiln = (name: string, command: string, env: Record<string, string> = {}, expect?: string): PlannedCheck => ({
    name,
    command,
    env,
    ...(expect === undefined ? {} : { expect }),
    source: 'kiln',
  });
  const checks: PlannedCheck[] = [
    kiln('boot unit succeeded', 'systemctl is-active kiln-boot.service', {}, 'active'),
    // Informational: the line the boot unit wrote last for this boot says what it did.
    kiln('boot unit report', BOOT_REPORT),
    kiln('k3s is running', 'systemctl is-active k3s.service', {}, 'active'),
    kiln('root volume version', 'cat -- "$VERSION_FILE"', { VERSION_FILE: versionPinning.rootFile }, version),
    kiln('data volume version', 'cat -- "$DATA_MOUNT/$VERSION_FILE"', { DATA_MOUNT: dataVolume.mountPoint, VERSION_FILE: versionPinning.dataFile }, version),
    kiln('data volume mounted by label', 'findmnt -n -o LABEL --mountpoint "$DATA_MOUNT"', { DATA_MOUNT: dataVolume.mountPoint }, dataVolume.label),
    ...dataVolume.links.map((link) =>
      kiln(`${link.path} on the data volume`, 'findmnt -n -o FSROOT --mountpoint "$LINK_PATH"', { LINK_PATH: link.path }, `/${link.target}`),
    ),
    ...Object.entries(host.sysctls).map(([key, value]) => kiln(`sysctl ${key}`, 'sysctl -n -- "$SYSCTL_KEY" | tr -s "\\t " " "', { SYSCTL_KEY: key }, String(value).replace(/\s+/g, ' '))),
  ];
  const registries = registriesConfig(definition);
  if (registries) {
    // Compared by sha256: the file can be longer than the output a check keeps.
    const sha = createHash('sha256').update(registries).digest('hex');
    checks.push(kiln(`registries.yaml mirrors ${k3s.registryMirror?.registries.join(', ') ?? ''} to the internal registry`, 'sha256sum < /etc/rancher/k3s/registries.yaml | cut -c1-64', {}, sha));
    if (k3s.registryMirror?.caFile) checks.push(kiln('registry mirror CA installed', 'grep -q -e "-----BEGIN CERTIFICATE-----" /etc/rancher/k3s/registry-ca.pem'));
  }
  if (host.firewall.enabled) {
    checks.push(
      kiln('firewall trusts the cluster and service CIDRs', FIREWALL_TRUSTS_CIDRS, { CLUSTER_CIDR: k3s.clusterCidr, SERVICE_CIDR: k3s.serviceCidr }),
    );
  }
  checks.push(
    kiln('only this instance\'s SSH key is authorized', ONLY_VALIDATION_KEY),
    kiln('machine id is this instance\'s own', 'grep -Eq "^[0-9a-f]{32}$" /etc/machine-id'),
    kiln('no shell history from the build', 'for f in /root/.bash_history /home/*/.bash_history; do if [ -s "$f" ]; then echo "$f"; exit 1; fi; done'),
  );
  for (const check of definition.checks) {
    checks.push({ name: check.name, command: check.command, env: {}, ...(check.expect === undefined ? {} : { expect: check.expect }), source: 'definition' });
  }
  return checks;
}

const BOOT_REPORT = `id=$(cat /proc/sys/kernel/random/boot_id)
grep -F -- "boot $id: " /var/log/kiln-boot.log | tail -n 1 | sed "s/^.*boot $id: //"`;

/** firewalld where it is active (Amazon Linux 2023), otherwise kiln's nftables table. */
const FIREWALL_TRUSTS_CIDRS = `if systemctl is-active --quiet firewalld.service 2>/dev/null; then
  rules=$(firewall-cmd --list-all-zones)
else
  rules=$(nft list table inet kiln)
fi
for cidr in "$CLUSTER_CIDR" "$SERVICE_CIDR"; do
  printf '%s\\n' "$rules" | grep -qF -- "$cidr" || { echo "missing $cidr"; exit 1; }
done`;

/** Every authorized_keys line on the machine must hold the validation key (no key from the build). */
const ONLY_VALIDATION_KEY = `found=0
for f in /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys; do
  [ -f "$f" ] || continue
  if grep -v -e '^[[:space:]]*$' -e '^#' -- "$f" | grep -qvF -- "$${VALIDATION_KEY_ENV}"; then echo "foreign key in $f"; found=1; fi
done
exit "$found"`;
