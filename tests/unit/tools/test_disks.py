"""blkid -p probes: what a disk (or a file) holds, from blkid's real `-o export` output."""

from management.tools.disks import holds, parse_probe, probe_argv

# captured with blkid -p -o export on the lab (util-linux 2.41): a zfs-fuse pool's file, an
# ext4 filesystem made by mkfs.ext4 -F on a file
ZFS_MEMBER = ("DEVNAME=a.img\nVERSION=23\nLABEL=cap5128\nUUID=13059518414738845148\nUUID_SUB=9113003604193722312\n"
              "BLOCK_SIZE=4096\nTYPE=zfs_member\nUSAGE=filesystem\n")
EXT4 = ("DEVNAME=c.img\nUUID=8ebed2d1-89ec-48af-bc76-d6e83c812dfe\nVERSION=1.0\nBLOCK_SIZE=1024\nTYPE=ext4\n"
        "USAGE=filesystem\n")


def test_probe_asks_the_device_itself_not_the_cache():
    assert probe_argv("/dev/sdb") == ["blkid", "-p", "-o", "export", "/dev/sdb"]


def test_a_pool_a_filesystem_and_a_partition_table_are_named():
    assert holds(parse_probe(ZFS_MEMBER)) == "a ZFS pool (cap5128)"
    assert holds(parse_probe(EXT4)) == "a filesystem (ext4)"
    assert holds(parse_probe("DEVNAME=/dev/sdb\nPTUUID=1d2c\nPTTYPE=gpt\n")) == "a partition table (gpt)"
    assert holds(parse_probe("DEVNAME=/dev/sdc\nTYPE=swap\nUSAGE=other\n")) == "a signature (swap)"


def test_nothing_found_is_none():
    assert holds(parse_probe("")) is None
