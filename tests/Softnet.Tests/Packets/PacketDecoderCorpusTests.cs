using System.Buffers.Binary;
using Softnet.Capture;
using Softnet.Packets;
using Softnet.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Softnet.Tests.Packets;

/// <summary>
/// Decodes every frame of the tcpdump test corpus (classic pcap files of the link types Softnet reads) and
/// compares the decoder's view of each frame with tshark's: protocols, VLAN ids, ports, VNI.
/// </summary>
public class PacketDecoderCorpusTests(ITestOutputHelper output)
{
    private const string CorpusDir = "/work/shared/corpus/tcpdump-tests";
    private static readonly LinkType[] Supported = [LinkType.Ethernet, LinkType.Raw, LinkType.LinuxSll, LinkType.LinuxSll2, LinkType.Ipv4, LinkType.Ipv6];

    /// <summary>Frames of a classic pcap file (either byte order, micro or nano); stops quietly at damage.</summary>
    internal static (LinkType LinkType, List<byte[]> Frames) ReadPcap(string path)
    {
        var d = File.ReadAllBytes(path);
        var frames = new List<byte[]>();
        if (d.Length < 24) return ((LinkType)uint.MaxValue, frames);
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(d);
        bool le = magic is 0xa1b2c3d4 or 0xa1b23c4d;
        bool be = magic is 0xd4c3b2a1 or 0x4d3cb2a1;
        if (!le && !be) return ((LinkType)uint.MaxValue, frames);
        uint U32(int o) => le ? BinaryPrimitives.ReadUInt32LittleEndian(d.AsSpan(o)) : BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(o));
        var lt = (LinkType)(U32(20) & 0x0FFFFFFF);
        int pos = 24;
        while (pos + 16 <= d.Length)
        {
            uint incl = U32(pos + 8);
            if (incl > 262144 || pos + 16 + incl > d.Length) break;
            frames.Add(d.AsSpan(pos + 16, (int)incl).ToArray());
            pos += 16 + (int)incl;
        }
        return (lt, frames);
    }

    private static IEnumerable<(string File, LinkType LinkType, List<byte[]> Frames)> Corpus()
    {
        if (!Directory.Exists(CorpusDir)) yield break;
        foreach (var f in Directory.EnumerateFiles(CorpusDir, "*.pcap").Order())
        {
            var (lt, frames) = ReadPcap(f);
            if (frames.Count > 0) yield return (Path.GetFileName(f), lt, frames);
        }
    }

    [SkippableFact]
    public void Whole_corpus_decodes_without_exceptions_and_offsets_in_range()
    {
        Skip.IfNot(Directory.Exists(CorpusDir), "tcpdump test corpus not present");
        int frames = 0;
        foreach (var (_, lt, list) in Corpus())
            foreach (var f in list)
            {
                // Every file also under each other link type: a different header interpretation of real bytes.
                PacketDecoderPropertyTests.AssertSane(f, lt);
                PacketDecoderPropertyTests.AssertSane(f, LinkType.Ethernet);
                PacketDecoderPropertyTests.AssertSane(f, LinkType.Raw);
                PacketDecoderPropertyTests.AssertSane(f, LinkType.LinuxSll);
                frames++;
            }
        output.WriteLine($"{frames} frames");
        Assert.True(frames > 1000);
    }

    private static readonly string[] Fields =
    [
        "frame.protocols", "vlan.id", "ieee8021ad.id", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "vxlan.vni",
        "ip.proto", "ipv6.nxt", "ip.flags.mf", "ip.frag_offset", "ipv6.fraghdr.offset", "_ws.expert.severity",
    ];

    [SkippableFact]
    public void Corpus_frames_agree_with_tshark()
    {
        Skip.IfNot(Directory.Exists(CorpusDir), "tcpdump test corpus not present");
        Skip.IfNot(ExternalTool.Exists("tshark"), ExternalTool.Missing("tshark"));
        int compared = 0, mismatches = 0;
        var drops = new Dictionary<string, int>();
        var perLinkType = new Dictionary<LinkType, int>();
        foreach (var lt in Supported)
        {
            var frames = Corpus().Where(c => c.LinkType == lt).SelectMany(c => c.Frames.Select(f => (c.File, f))).ToList();
            if (frames.Count == 0) continue;
            var oracle = new TsharkOracle(frames.Select(x => x.f).ToList(), Fields, lt,
                "ip.defragment:FALSE", "ipv6.defragment:FALSE", "tcp.desegment_tcp_streams:FALSE", "tcp.analyze_sequence_numbers:FALSE");
            Assert.True(oracle.Available, oracle.Error);
            for (int i = 0; i < frames.Count; i++)
            {
                var (file, f) = frames[i];
                var row = oracle[i];
                var r = PacketDecoder.Decode(f, lt, out var p);
                perLinkType[lt] = perLinkType.GetValueOrDefault(lt) + 1;
                if (r != DropReason.None)
                {
                    var key = DropReasons.Name(r);
                    drops[key] = drops.GetValueOrDefault(key) + 1;
                }
                if (r != DropReason.None || p.Protocols.Has(ProtocolFlags.Fragment)) continue;
                var why = Compare(row, p);
                compared++;
                if (why != null)
                {
                    mismatches++;
                    if (mismatches <= 40) output.WriteLine($"{file} #{i} ({lt}): {why} | tshark: {row["frame.protocols"]}");
                }
            }
        }
        output.WriteLine($"compared {compared} frames, {mismatches} mismatches");
        output.WriteLine("frames per link type: " + string.Join(", ", perLinkType.Select(kv => $"{kv.Key}={kv.Value}")));
        output.WriteLine("drops: " + string.Join(", ", drops.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key}={kv.Value}")));
        Assert.True(compared > 500);
        Assert.Equal(0, mismatches);
    }

    /// <summary>Null when the decoder and tshark agree on this frame, else what differs.</summary>
    private static string? Compare(Dictionary<string, string> row, DecodedPacket p)
    {
        var protos = row["frame.protocols"].Split(':');
        // The transport tshark dissected first after the first IP header (ICMP errors quote more inside).
        int ipAt = Array.FindIndex(protos, t => t is "ip" or "ipv6");
        string? l4 = ipAt < 0 ? null : protos.Skip(ipAt + 1).FirstOrDefault(t => !t.StartsWith("ipv6.", StringComparison.Ordinal));

        var linkChain = protos.TakeWhile(t => t is not ("ip" or "ipv6" or "arp")).ToArray();
        int vlans = linkChain.Count(t => t is "vlan" or "ieee8021ad");
        // tshark also dissects encapsulations Softnet leaves to later stages or ignores (MPLS, MACsec, NSH,
        // Arista AVSP trailers, RARP): the decoder must call those Other, and only the VLAN tags before them compare.
        bool foreignEncap = linkChain.Any(t => t is not ("eth" or "ethertype" or "vlan" or "ieee8021ad" or "sll" or "raw"))
            || p.EtherType == 0x8035;
        if (foreignEncap)
        {
            if (!p.Protocols.Has(ProtocolFlags.Other) || p.Protocols.IsIp()) return "foreign encapsulation not Other";
            int before = linkChain.TakeWhile(t => t is "eth" or "ethertype" or "vlan" or "ieee8021ad" or "sll" or "raw").Count(t => t is "vlan" or "ieee8021ad");
            return before == p.VlanCount ? null : $"vlan count {p.VlanCount} vs {before} before foreign encapsulation";
        }
        if (Math.Min(vlans, 4) != p.VlanCount) return $"vlan count {p.VlanCount} vs {vlans}";
        if (p.VlanCount > 0)
        {
            long first = row["ieee8021ad.id"].Length > 0 ? TsharkOracle.Numbers(row["ieee8021ad.id"])[0] : TsharkOracle.Numbers(row["vlan.id"])[0];
            if (first != p.VlanId) return $"vlan id {p.VlanId} vs {first}";
        }
        if (p.Protocols.Has(ProtocolFlags.Ipv4) != (ipAt >= 0 && protos[ipAt] == "ip")) return "ipv4 presence";
        if (p.Protocols.Has(ProtocolFlags.Ipv6) != (ipAt >= 0 && protos[ipAt] == "ipv6")) return "ipv6 presence";
        if (p.Protocols.Has(ProtocolFlags.Arp) != (protos.Contains("arp") && ipAt < 0)) return "arp presence";

        if (p.Protocols.Has(ProtocolFlags.Tcp))
        {
            if (l4 != "tcp") return $"tcp vs {l4}";
            if (TsharkOracle.Numbers(row["tcp.srcport"])[0] != p.SourcePort || TsharkOracle.Numbers(row["tcp.dstport"])[0] != p.DestinationPort) return "tcp ports";
        }
        else if (l4 == "tcp") return "tshark saw tcp";
        if (p.Protocols.Has(ProtocolFlags.Udp))
        {
            if (l4 != "udp") return $"udp vs {l4}";
            if (TsharkOracle.Numbers(row["udp.srcport"])[0] != p.SourcePort || TsharkOracle.Numbers(row["udp.dstport"])[0] != p.DestinationPort) return "udp ports";
        }
        else if (l4 == "udp") return "tshark saw udp";
        if (p.Protocols.Has(ProtocolFlags.Icmp) != (l4 == "icmp")) return $"icmp vs {l4}";
        if (p.Protocols.Has(ProtocolFlags.Icmpv6) != (l4 == "icmpv6")) return $"icmpv6 vs {l4}";
        if (p.Protocols.Has(ProtocolFlags.Vxlan))
        {
            if (!protos.Contains("vxlan")) return "vxlan";
            if (TsharkOracle.Numbers(row["vxlan.vni"])[0] != p.Vni) return "vni";
        }
        return null;
    }
}
