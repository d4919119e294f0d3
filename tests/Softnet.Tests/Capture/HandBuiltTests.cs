using Softnet.Capture;
using Xunit;
using static Softnet.Tests.Capture.CaptureTestKit;

namespace Softnet.Tests.Capture;

/// <summary>Files built byte by byte, covering what our writers never produce.</summary>
public class HandBuiltTests
{
    private static readonly byte[] A = [0xde, 0xad, 0xbe, 0xef, 0x01];
    private static readonly byte[] B = [0x45, 0x00, 0x00, 0x14, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void Pcap_all_four_magics(bool bigEndian, bool nanos)
    {
        var f = new FileBuilder(bigEndian)
            .PcapHeader(nanos ? 0xa1b23c4du : 0xa1b2c3d4u, 113, 1000)
            .PcapRecord(1_700_000_000, 999_999, A)
            .PcapRecord(1_700_000_001, 5, B, 1400)
            .ToArray();
        using var r = (PcapReader)CaptureReader.Open(new MemoryStream(f));
        Assert.Equal(bigEndian, r.BigEndian);
        Assert.Equal(nanos, r.Nanosecond);
        Assert.Equal(LinkType.LinuxSll, r.LinkType);
        Assert.Equal(new CaptureInterface(LinkType.LinuxSll, 1000, null, nanos ? 1_000_000_000 : 1_000_000), r.Interfaces[0]);
        var (read, err) = ReadAll(r);
        Assert.Null(err);
        Assert.Equal(2, read.Count);
        long mul = nanos ? 1 : 1000;
        Assert.Equal(new FrameMeta(1_700_000_000_000_000_000 + 999_999 * mul, A.Length, LinkType.LinuxSll, 0), read[0].Meta);
        Assert.Equal(new FrameMeta(1_700_000_001_000_000_000 + 5 * mul, 1400, LinkType.LinuxSll, 0), read[1].Meta);
        Assert.Equal(A, read[0].Data);
        Assert.Equal(B, read[1].Data);
    }

    [Fact]
    public void Pcap_any_link_type_and_fcs_bits_masked()
    {
        // 0x10000000 | 147 : LINKTYPE_USER0 with an FCS-length hint in the top bits.
        var f = new FileBuilder(false).PcapHeader(0xa1b2c3d4, 0x1000_0000 | 147).PcapRecord(1, 2, A).ToArray();
        var (read, err) = ReadAll(f);
        Assert.Null(err);
        Assert.Equal((LinkType)147, Assert.Single(read).Meta.LinkType);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Pcapng_tsresol_micro_nano_and_binary(bool bigEndian)
    {
        ulong secs = 1_700_000_000;
        var f = new FileBuilder(bigEndian)
            .Shb()
            .Idb(1, 0, "eth-default")                      // no if_tsresol: microseconds
            .Idb(1, 0, "eth-micro", tsresol: 6)
            .Idb(1, 0, "eth-nano", tsresol: 9)
            .Idb(1, 0, "eth-bin20", tsresol: 0x80 | 20)
            .Idb(101, 0, "raw-offset", tsresol: 9, tsoffset: 100)
            .Epb(0, secs * 1_000_000 + 123_456, A)
            .Epb(1, secs * 1_000_000 + 1, A)
            .Epb(2, secs * 1_000_000_000 + 7, B, 60)
            .Epb(3, (secs << 20) | (1 << 19), A)                 // half a second in 2^-20 ticks
            .Epb(4, 5, B)
            .ToArray();
        using var r = (PcapngReader)CaptureReader.Open(new MemoryStream(f));
        var (read, err) = ReadAll(r);
        Assert.Null(err);
        Assert.Equal(bigEndian, r.BigEndian);
        Assert.Equal(["eth-default", "eth-micro", "eth-nano", "eth-bin20", "raw-offset"], r.Interfaces.Select(i => i.Name));
        Assert.Equal([1_000_000L, 1_000_000, 1_000_000_000, 1 << 20, 1_000_000_000], r.Interfaces.Select(i => i.TicksPerSecond));
        long s = (long)secs * 1_000_000_000;
        Assert.Equal([s + 123_456_000, s + 1000, s + 7, s + 500_000_000, 100_000_000_005], read.Select(x => x.Meta.TimestampNs));
        Assert.Equal([0, 1, 2, 3, 4], read.Select(x => x.Meta.InterfaceId));
        Assert.Equal(60, read[2].Meta.OriginalLength);
        Assert.Equal(LinkType.Raw, read[4].Meta.LinkType);
        Assert.Equal(B, read[4].Data);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Pcapng_spb_takes_interface_0_and_min_of_orig_snap_block(bool bigEndian)
    {
        var big = Enumerable.Range(0, 100).Select(i => (byte)i).ToArray();
        var f = new FileBuilder(bigEndian)
            .Shb()
            .Idb(1, 64)
            .Spb(5, B)          // orig 5 < block data (9, padded to 12): captured 5
            .Spb(100, big)      // snaplen 64 cuts
            .Spb(2000, A)       // orig larger than the block: the block bounds it (5 bytes plus padding)
            .ToArray();
        var (read, err) = ReadAll(f);
        Assert.Null(err);
        Assert.Equal(3, read.Count);
        Assert.Equal(B[..5], read[0].Data);
        Assert.Equal(big[..64], read[1].Data);
        Assert.Equal(100, read[1].Meta.OriginalLength);
        Assert.Equal(8, read[2].Data.Length); // A padded to 8 bytes in the block
        Assert.Equal(2000, read[2].Meta.OriginalLength);
        Assert.All(read, x => Assert.Equal(0, x.Meta.InterfaceId));
    }

    [Fact]
    public void Pcapng_sections_reset_interfaces_and_may_change_byte_order()
    {
        var le = new FileBuilder(false).Shb().Idb(1, 0, "s1-eth0", 9).Idb(101, 0, "s1-raw", 9)
            .Epb(1, 10, A).Epb(0, 11, B).ToArray();
        var be = new FileBuilder(true).Shb().Idb(113, 0, "s2-sll", 9)
            .Block(4, b => b.U16(0).U16(0))                   // NRB, empty: skipped
            .Epb(0, 12, A).ToArray();
        var le2 = new FileBuilder(false).Shb().Idb(1, 0, "s3-a", 9).Idb(1, 0, "s3-b", 9).Epb(1, 13, B).ToArray();
        using var r = (PcapngReader)CaptureReader.Open(new MemoryStream([.. le, .. be, .. le2]));
        var (read, err) = ReadAll(r);
        Assert.Null(err);
        Assert.Equal(3, r.Sections);
        Assert.Equal(["s1-eth0", "s1-raw", "s2-sll", "s3-a", "s3-b"], r.Interfaces.Select(i => i.Name));
        Assert.Equal([1, 0, 2, 4], read.Select(x => x.Meta.InterfaceId));
        Assert.Equal([LinkType.Raw, LinkType.Ethernet, LinkType.LinuxSll, LinkType.Ethernet], read.Select(x => x.Meta.LinkType));
        Assert.Equal([10L, 11, 12, 13], read.Select(x => x.Meta.TimestampNs));
    }

    [Fact]
    public void Pcapng_interface_of_an_earlier_section_is_not_reachable()
    {
        var f = new FileBuilder(false).Shb().Idb(1, 0).Idb(1, 0).Shb().Idb(1, 0).Epb(1, 0, A).ToArray();
        var (read, err) = ReadAll(f);
        Assert.Empty(read);
        Assert.NotNull(err);
        Assert.Contains("interface id 1", err.Message);
        Assert.Equal("pcapng EPB", err.Block);
    }

    [Fact]
    public void Pcapng_skips_unknown_blocks_and_reads_obsolete_packet_block()
    {
        var f = new FileBuilder(false).Shb().Idb(1, 0, tsresol: 9)
            .Block(5, b => b.U32(0).U64(0).U16(0).U16(0))       // ISB
            .Block(0x0A, b => b.U32(0x544c534b).U32(3).Bytes([1, 2, 3])) // DSB
            .Block(0x00000BAD, b => b.U32(32473).Bytes(new byte[100])) // custom
            .Block(0x12345678, b => b.Bytes(new byte[1 << 20]))  // unknown and larger than the initial buffer
            .Opb(0, 42, A)
            .Epb(0, 43, B)
            .ToArray();
        var (read, err) = ReadAll(f);
        Assert.Null(err);
        Assert.Equal([42L, 43], read.Select(x => x.Meta.TimestampNs));
        Assert.Equal(A, read[0].Data);
    }

    [Fact]
    public void Neither_format_names_offset_0()
    {
        foreach (var bytes in new[] { Array.Empty<byte>(), [1, 2], "hello world, not a capture"u8.ToArray() })
        {
            var e = Assert.Throws<CaptureFormatException>(() => CaptureReader.Open(new MemoryStream(bytes)));
            Assert.Equal(0, e.Offset);
        }
    }

    [Fact]
    public void Pcapng_messages_name_block_and_offset()
    {
        var good = new FileBuilder(false).Shb().Idb(1, 0).Epb(0, 1, A).ToArray();
        var bad = new FileBuilder(false).U32(6).U32(7).U32(0).ToArray();
        var (read, err) = ReadAll([.. good, .. bad]);
        Assert.Single(read);
        Assert.NotNull(err);
        Assert.Equal(good.Length, err.Offset);
        Assert.StartsWith("pcapng EPB: block total length 7 is not a multiple of 4", err.Message);

        var pcap = new FileBuilder(false).PcapHeader(0xa1b2c3d4, 1);
        for (int i = 0; i < 11; i++) pcap.PcapRecord(0, 0, A);
        long at = pcap.Length;
        pcap.PcapRecord(0, 0, A);
        var cut = pcap.ToArray()[..(int)(at + 10)];
        (read, err) = ReadAll(cut);
        Assert.Equal(11, read.Count);
        Assert.NotNull(err);
        Assert.StartsWith("pcap record #12 header truncated", err.Message);
        Assert.Equal(at, err.Offset);
    }

    [Fact]
    public void Huge_length_fields_are_corruption_not_out_of_memory()
    {
        var pcap = new FileBuilder(false).PcapHeader(0xa1b2c3d4, 1, 0xffffffff).U32(0).U32(0).U32(0xfffffff0).U32(0xfffffff0).ToArray();
        var (_, err) = ReadAll(pcap);
        Assert.NotNull(err);
        var png = new FileBuilder(false).Shb().U32(6).U32(0xfffffff0).U32(0).ToArray();
        (_, err) = ReadAll(png);
        Assert.NotNull(err);
        var unknown = new FileBuilder(false).Shb().U32(0x777).U32(0xfffffff0).U32(0).ToArray();
        (_, err) = ReadAll(unknown);
        Assert.NotNull(err);
        var idbSnap = new FileBuilder(false).Shb().Idb(1, 0xffffffff).Spb(0xffffffff, A).ToArray();
        var (read, err2) = ReadAll(idbSnap);
        Assert.Null(err2);
        Assert.Equal(int.MaxValue, Assert.Single(read).Meta.OriginalLength);
    }
}
