#!/bin/sh
# mkvm.sh: a bootable disk image with a gateway release staged by the REAL install.sh --root,
# for tests/test_qemu.py. The base is the cached `scripts/mkroot.sh vm` root (Debian with a
# kernel); the image is a raw ext4 file system made with mkfs.ext4 -d (no loop devices).
#
# Usage: scripts/mkvm.sh OUTDIR RELEASE.tar.gz PROFILE SSH_PUBKEY_FILE
# Produces OUTDIR/disk.img, OUTDIR/vmlinuz, OUTDIR/initrd.img. Boot it with
#   qemu-system-x86_64 -m 512 -kernel vmlinuz -initrd initrd.img -drive file=disk.img,format=raw,if=virtio \
#     -append 'root=/dev/vda rw console=ttyS0' -netdev user,id=n0,restrict=on,... -device virtio-net-pci,netdev=n0
# Inside: the static address 10.0.2.15/24 of QEMU's user network, sshd (root, that key only),
# gateway.service enabled with PROFILE. Needs root (install.sh --root uses a mount namespace).
set -eu

[ $# -eq 4 ] || { sed -n '6,12s/^# \{0,1\}//p' "$0" >&2; exit 2; }
out=$1 tarball=$2 profile=$3 pubkey=$4
here=$(cd "$(dirname "$0")" && pwd)
base=$(sh "$here/mkroot.sh" vm)

mkdir -p "$out"
root=$out/root
rm -rf "$root" "$out/release"
trap 'rm -rf "$root" "$out/release"' EXIT INT TERM
cp -a --reflink=auto "$base" "$root"
rm -f "$root/.complete"

# The release, staged exactly as for a device image.
mkdir -p "$out/release"
tar xzf "$tarball" -C "$out/release"
sh "$out"/release/gateway-*/install.sh --root "$root" --profile "$profile" \
  --python /usr/bin/python3 >&2

echo gwvm > "$root/etc/hostname"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' > "$root/etc/fstab"
mkdir -p "$root/etc/systemd/network"
cat > "$root/etc/systemd/network/10-qemu.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
systemctl --root="$root" --quiet enable systemd-networkd.service
for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
    e2scrub_reap.service fstrim.timer systemd-timesyncd.service getty@tty1.service \
    systemd-networkd-wait-online.service; do
  ln -sfn /dev/null "$root/etc/systemd/system/$unit"
done
ssh-keygen -q -A -f "$root"
mkdir -p "$root/root/.ssh"
chmod 0700 "$root/root/.ssh"
install -m 0600 "$pubkey" "$root/root/.ssh/authorized_keys"

kernel="" initrd=""
for f in "$root"/boot/vmlinuz-*; do kernel=$f; done       # globs sort: the newest last
for f in "$root"/boot/initrd.img-*; do initrd=$f; done
if [ ! -f "$kernel" ] || [ ! -f "$initrd" ]; then echo "mkvm.sh: no kernel/initrd in $base/boot" >&2; exit 1; fi
cp "$kernel" "$out/vmlinuz"
cp "$initrd" "$out/initrd.img"
rm -f "$out/disk.img"
mkfs.ext4 -q -F -L gwroot -d "$root" "$out/disk.img" 2G
echo "$out/disk.img"
