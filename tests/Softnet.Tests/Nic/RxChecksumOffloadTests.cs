using System.Buffers.Binary;
using System.Text.Json;
using CsCheck;
using Softnet.Capture;
using Softnet.Capture.Generator;
using Softnet.Nic;
using Softnet.Packets;
using Softnet.Pipeline;
using Softnet.Tests.Packets;
using Softnet.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Softnet.Tests.Nic;

/// <summary>The port's receive checksum offload (ice's L3L4P with its IPE and L4E bits, then ice_rx_csum): which frames
/// it checks, what it finds, and that a replay's outcome is the same with it on or off but for the counter.</summary>
public class RxChecksumOffloadTests(ITestOutputHelper output)
{
    private const int Ok = RxDescriptor.L3L4Processed;
    private const int IpBad = RxDescriptor.L3L4Processed | RxDescriptor.IpChecksumError;
    private const int L4Bad = RxDescriptor.L3L4Processed | RxDescriptor.L4ChecksumError;

    /// <summary>An Ethernet frame (optionally 802.1Q-tagged) carrying IPv4 or IPv6 with a TCP or UDP segment of
    /// <paramref name="payload"/> bytes, every checksum right.</summary>
    internal static byte[] Frame(bool v6, bool tcp, int payload, bool vlan = false, int seed = 1)
    {
        int l4Len = (tcp ? 20 : 8) + payload;
        int ipLen = (v6 ? 40 : 20) + l4Len;
        int eth = vlan ? 18 : 14;
        var f = new byte[eth + ipLen];
        f[0] = 0x02; f[5] = 0x02; f[6] = 0x02; f[11] = 0x01;
        if (vlan)
        {
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), EtherTypes.Vlan);
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(14), 100);
        }
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(eth - 2), v6 ? EtherTypes.Ipv6 : EtherTypes.Ipv4);
        var ip = f.AsSpan(eth);
        byte proto = tcp ? IpProtocols.Tcp : IpProtocols.Udp;
        if (v6)
        {
            ip[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(4), (ushort)l4Len);
            ip[6] = proto;
            ip[7] = 64;
            ip[8] = 0x20; ip[9] = 0x01; ip[23] = 1;
            ip[24] = 0x20; ip[25] = 0x01; ip[39] = 2;
        }
        else
        {
            Softnet.Ip.PacketFactory.Ipv4Header(ip, 0, ipLen, (ushort)seed, true, 64, proto, 0x0A000001, 0x0A000002);
        }
        var l4 = ip.Slice(v6 ? 40 : 20);
        var rng = new Random(seed);
        rng.NextBytes(l4.Slice(tcp ? 20 : 8));
        BinaryPrimitives.WriteUInt16BigEndian(l4, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(2), 5201);
        if (tcp) l4[12] = 0x50;
        else BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(4), (ushort)l4Len);
        int checkAt = tcp ? 16 : 6;
        uint pseudo = Pseudo(ip, v6, proto, l4Len);
        ushort check = Checksum.Compute(l4, pseudo);
        if (!tcp && check == 0) check = 0xFFFF; // UDP sends a computed zero as all ones
        BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(checkAt), check);
        return f;
    }

    private static uint Pseudo(ReadOnlySpan<byte> ip, bool v6, byte proto, int l4Len)
        => v6 ? Checksum.PseudoHeaderV6(ip.Slice(8, 16), ip.Slice(24, 16), proto, l4Len)
              : Checksum.PseudoHeaderV4(ip.Slice(12, 4), ip.Slice(16, 4), proto, l4Len);

    /// <summary>What the offload should say, worked out with the network-order checksum helpers.</summary>
    private static int Expected(byte[] frame, bool v6, bool tcp, bool vlan)
    {
        var ip = frame.AsSpan(vlan ? 18 : 14);
        if (!v6 && Checksum.Sum(ip.Slice(0, 20)) != 0xFFFF) return IpBad;
        var l4 = ip.Slice(v6 ? 40 : 20);
        ushort check = BinaryPrimitives.ReadUInt16BigEndian(l4.Slice(tcp ? 16 : 6));
        if (!tcp && check == 0) return v6 ? 0 : Ok;
        return Checksum.Verify(l4, Pseudo(ip, v6, tcp ? IpProtocols.Tcp : IpProtocols.Udp, l4.Length)) ? Ok : L4Bad;
    }

    [Fact]
    public void Checks_every_shape_and_size_as_the_network_order_sums_do()
    {
        // A frame is spoilt (or not) in one byte anywhere after the Ethernet header, or in its checksum field.
        Gen.Select(Gen.Bool, Gen.Bool, Gen.Int[0, 1460], Gen.Bool, Gen.Int[0, 3], Gen.Int[0, int.MaxValue], Gen.Byte[1, 255])
            .Sample((v6, tcp, payload, vlan, spoil, at, xor) =>
            {
                var f = Frame(v6, tcp, payload, vlan, seed: at & 0xFFFF);
                int eth = vlan ? 18 : 14;
                int ipHeader = v6 ? 40 : 20;
                switch (spoil)
                {
                    case 1: f[eth + ipHeader + (tcp ? 20 : 8) + at % Math.Max(1, payload)] ^= payload > 0 ? xor : (byte)0; break;
                    case 2 when !v6: f[eth + 10 + at % 2] ^= xor; break; // the IPv4 header checksum
                    case 3: f[eth + ipHeader + (tcp ? 16 : 6) + at % 2] ^= xor; break; // the TCP/UDP checksum
                }
                Assert.Equal(Expected(f, v6, tcp, vlan), RxChecksumOffload.Status(f));
            });
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void Good_frames_pass_and_a_flipped_payload_bit_fails(bool v6, bool tcp)
    {
        var f = Frame(v6, tcp, 100);
        Assert.Equal(Ok, RxChecksumOffload.Status(f));
        f[^1] ^= 0x10;
        Assert.Equal(L4Bad, RxChecksumOffload.Status(f));
    }

    [Fact]
    public void A_wrong_ipv4_header_checksum_is_the_ip_error()
    {
        var f = Frame(false, false, 10);
        f[14 + 11] ^= 1;
        Assert.Equal(IpBad, RxChecksumOffload.Status(f));
    }

    [Fact]
    public void Ethernet_padding_after_the_ip_packet_is_not_summed()
    {
        var f = Frame(false, false, 4); // 46 bytes: a 60-byte frame on the wire
        var padded = new byte[60];
        f.CopyTo(padded, 0);
        padded.AsSpan(f.Length).Fill(0xAB);
        Assert.Equal(Ok, RxChecksumOffload.Status(padded));
    }

    [Fact]
    public void Frames_ice_gives_no_l4_packet_type_are_not_checked()
    {
        // IPv4 fragment (MF set).
        var frag = Frame(false, false, 40);
        frag[14 + 6] |= 0x20;
        FixIpv4Header(frag);
        Assert.Equal(0, RxChecksumOffload.Status(frag));
        // ICMP.
        var icmp = Frame(false, false, 40);
        icmp[14 + 9] = IpProtocols.Icmp;
        FixIpv4Header(icmp);
        Assert.Equal(0, RxChecksumOffload.Status(icmp));
        // IPv6 with a hop-by-hop header in front of the transport header.
        var ext = Frame(true, false, 40);
        ext[14 + 6] = IpProtocols.HopByHop;
        Assert.Equal(0, RxChecksumOffload.Status(ext));
        // IPv4 claiming more bytes than the frame has.
        var cut = Frame(false, true, 40)[..^10];
        Assert.Equal(0, RxChecksumOffload.Status(cut));
        // A UDP length that is not the IP payload's: the stack trims or drops it.
        var udpLen = Frame(false, false, 40);
        BinaryPrimitives.WriteUInt16BigEndian(udpLen.AsSpan(14 + 20 + 4), 30);
        Assert.Equal(0, RxChecksumOffload.Status(udpLen));
        // The IPv4 header of any packet is checked: a fragment's or an ICMP message's bad header is the IP error.
        frag[14 + 11] ^= 1;
        Assert.Equal(IpBad, RxChecksumOffload.Status(frag));
        icmp[14 + 11] ^= 1;
        Assert.Equal(IpBad, RxChecksumOffload.Status(icmp));
        // Not IP at all, and a runt.
        var arp = Frame(false, false, 40);
        BinaryPrimitives.WriteUInt16BigEndian(arp.AsSpan(12), EtherTypes.Arp);
        Assert.Equal(0, RxChecksumOffload.Status(arp));
        Assert.Equal(0, RxChecksumOffload.Status(new byte[10]));
    }

    private static void FixIpv4Header(byte[] f)
    {
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(14 + 10), 0);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(14 + 10), Checksum.Compute(f.AsSpan(14, 20)));
    }

    [Fact]
    public void A_udp_datagram_without_checksum_passes_on_ipv4_and_is_left_to_the_stack_on_ipv6()
    {
        foreach (bool v6 in new[] { false, true })
        {
            var f = Frame(v6, false, 20);
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(14 + (v6 ? 40 : 20) + 6), 0);
            Assert.Equal(v6 ? 0 : Ok, RxChecksumOffload.Status(f));
        }
    }

    /// <summary>The capture for the replay tests: a generated TCP and UDP mix (so GRO merges), with every 7th frame's
    /// last byte flipped and every 11th frame's IPv4 header checksum spoilt.</summary>
    private static List<(long, byte[])> Spoilt(out int l4Bad, out int ipBad)
    {
        var frames = new List<(long, byte[])>();
        l4Bad = ipBad = 0;
        foreach (var proto in new[] { TrafficProtocol.Tcp, TrafficProtocol.Udp })
        {
            using var g = new GeneratorCaptureReader(new GeneratorOptions { Streams = 4, Bytes = 400_000, Seed = 3, Protocol = proto });
            while (g.TryRead(out var meta, out var frame)) frames.Add((meta.TimestampNs, frame.ToArray()));
        }
        frames.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        for (int i = 0; i < frames.Count; i++)
        {
            var f = frames[i].Item2;
            if (RxChecksumOffload.Status(f) != Ok) continue;
            if (i % 11 == 0) { f[14 + 10] ^= 0x01; ipBad++; }
            else if (i % 7 == 0 && f.Length > 14 + 20 + 20) { f[^1] ^= 0x01; l4Bad++; }
        }
        return frames;
    }

    [Fact]
    public void A_replay_comes_out_the_same_with_the_offload_on_or_off_but_for_the_counter()
    {
        var frames = Spoilt(out int l4Bad, out int ipBad);
        Assert.True(l4Bad > 10 && ipBad > 10);
        string Run(bool rx, out Softnet.Telemetry.ReplayReport report, out ReplayPipeline pipeline)
        {
            pipeline = new ReplayPipeline(new ReplayOptions { Nic = new NicOptions { RxChecksum = rx }, Gro = new Softnet.Gro.GroOptions() });
            using var reader = new MemoryCaptureReader(frames);
            report = pipeline.Run(reader, "test");
            var ms = new MemoryStream();
            report.WriteJson(ms);
            return System.Text.Encoding.UTF8.GetString(ms.ToArray());
        }
        string on = Run(true, out var rOn, out var pOn), off = Run(false, out var rOff, out var pOff);
        Assert.Equal(rOff.Delivered, rOn.Delivered);
        Assert.Equal(rOff.PacketsIn, rOn.PacketsIn);
        using var jOn = JsonDocument.Parse(on);
        using var jOff = JsonDocument.Parse(off);
        // GRO merged and passed up the same skbs for the same reasons: the frames the port vouched for needed no sum,
        // the spoilt ones it left CHECKSUM_NONE and GRO found them bad as before.
        Assert.Equal(jOff.RootElement.GetProperty("gro").GetRawText(), jOn.RootElement.GetProperty("gro").GetRawText());
        Assert.Equal(jOff.RootElement.GetProperty("protocols").GetRawText(), jOn.RootElement.GetProperty("protocols").GetRawText());
        // Only the port's counter tells them apart.
        var nicOn = jOn.RootElement.GetProperty("nic");
        Assert.Equal("on", nicOn.GetProperty("rx_checksumming").GetString());
        Assert.Equal(l4Bad + ipBad, nicOn.GetProperty("queues")[0].GetProperty("rx_csum_bad").GetInt64());
        Assert.Contains($"rx_csum_bad.nic: {l4Bad + ipBad}\n", nicOn.GetProperty("ethtool_s").GetString());
        var nicOff = jOff.RootElement.GetProperty("nic");
        Assert.Equal("off", nicOff.GetProperty("rx_checksumming").GetString());
        Assert.Equal(0, nicOff.GetProperty("queues")[0].GetProperty("rx_csum_bad").GetInt64());
        Assert.Contains("rx_csum_bad.nic: 0\n", nicOff.GetProperty("ethtool_s").GetString());
        Assert.Equal(pOff.Gro!.TotalStats().Merged, pOn.Gro!.TotalStats().Merged);
        Assert.True(pOn.Gro!.TotalStats().Merged > 0);
    }

    /// <summary>Every Ethernet frame of the tcpdump test corpus the port checks gets tshark's verdict on the same bytes
    /// (ip.check_checksum, tcp.check_checksum, udp.check_checksum): the IPv4 header checksum, then the first TCP or UDP
    /// header's (the outer one of a tunnel), good where tshark says good or absent, wrong where it says bad.</summary>
    [SkippableFact]
    public void Corpus_frames_the_port_checks_get_tsharks_verdict()
    {
        const string corpus = "/work/shared/corpus/tcpdump-tests";
        Skip.IfNot(Directory.Exists(corpus), "tcpdump test corpus not present");
        Skip.IfNot(ExternalTool.Exists("tshark"), ExternalTool.Missing("tshark"));
        var frames = new List<(string File, byte[] Frame)>();
        foreach (var f in Directory.EnumerateFiles(corpus, "*.pcap").Order())
        {
            var (lt, list) = PacketDecoderCorpusTests.ReadPcap(f);
            if (lt == LinkType.Ethernet) frames.AddRange(list.Select(x => (Path.GetFileName(f), x)));
        }
        string[] fields = ["ip.checksum.status", "tcp.checksum.status", "udp.checksum.status", "frame.protocols"];
        var oracle = new TsharkOracle(frames.Select(x => x.Frame).ToList(), fields, LinkType.Ethernet,
            "ip.check_checksum:TRUE", "tcp.check_checksum:TRUE", "udp.check_checksum:TRUE", "ip.defragment:FALSE", "ipv6.defragment:FALSE",
            "tcp.desegment_tcp_streams:FALSE");
        Assert.True(oracle.Available, oracle.Error);
        int checkedFrames = 0, ipBad = 0, l4Bad = 0, mismatches = 0;
        for (int i = 0; i < frames.Count; i++)
        {
            int status = RxChecksumOffload.Status(frames[i].Frame);
            if (status == 0) continue;
            checkedFrames++;
            var row = oracle[i];
            // Wireshark's checksum status: 0 bad, 1 good, 2 unverified, 3 not present.
            static long First(string v) => v.Length == 0 ? -1 : TsharkOracle.Numbers(v)[0];
            long ip = First(row["ip.checksum.status"]);
            var protos = row["frame.protocols"].Split(':');
            int tcpAt = Array.IndexOf(protos, "tcp"), udpAt = Array.IndexOf(protos, "udp");
            long l4 = tcpAt >= 0 && (udpAt < 0 || tcpAt < udpAt) ? First(row["tcp.checksum.status"]) : First(row["udp.checksum.status"]);
            string? why = null;
            if ((status & RxDescriptor.IpChecksumError) != 0)
            {
                ipBad++;
                if (ip != 0) why = $"IPE, tshark ip {ip}";
            }
            else if (ip == 0) why = "IPv4 header passed, tshark says bad";
            else if ((status & RxDescriptor.L4ChecksumError) != 0)
            {
                l4Bad++;
                if (l4 != 0) why = $"L4E, tshark l4 {l4}";
            }
            else if (l4 is not (1 or 3)) why = $"L4 passed, tshark l4 {l4}";
            if (why is null) continue;
            mismatches++;
            if (mismatches <= 20) output.WriteLine($"{frames[i].File} frame {i}: {why} ({row["frame.protocols"]})");
        }
        output.WriteLine($"{frames.Count} Ethernet frames, {checkedFrames} checked by the port: {ipBad} IPv4 header and {l4Bad} TCP/UDP checksums wrong");
        Assert.Equal(0, mismatches);
        Assert.True(checkedFrames > 1000 && l4Bad > 10 && ipBad > 0, $"checked {checkedFrames}, L4 bad {l4Bad}, IP bad {ipBad}");
    }
}
