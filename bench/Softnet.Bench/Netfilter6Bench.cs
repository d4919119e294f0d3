using System.Buffers.Binary;
using System.Diagnostics;
using System.Text.Json;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.Bench;

/// <summary>
/// `bench netfilter6`: packets/s per core through IPv6 conntrack + NAT66 + ip6tables filter (PREROUTING, FORWARD,
/// POSTROUTING) for the v6-fw router ruleset (tests/Softnet.KernelTests/Scenarios/v6-fw/ns/fw/ip6tables.save): TCP flows
/// out of the LAN (MASQUERADE) and into the published port (DNAT), each SYN, SYN-ACK, ACK, data and ACKs, FINs, last ACK,
/// passes repeated (reopened from TIME_WAIT). Allocation per packet is reported too (it should be 0).
/// </summary>
public static class Netfilter6Bench
{
    private const string Rules = """
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -d 2001:db8:ff::1/128 -i wan0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [2001:db8:1::2]:80
        -A POSTROUTING -s 2001:db8:1::/64 -o wan0 -j MASQUERADE
        COMMIT
        *filter
        :INPUT DROP [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -i lan0 -o wan0 -p udp -m udp --dport 69 -j REJECT --reject-with icmp6-port-unreachable
        -A FORWARD -i lan0 -o wan0 -j ACCEPT
        -A FORWARD -i wan0 -o lan0 -p tcp -m conntrack --ctstate DNAT -m tcp --dport 80 -j ACCEPT
        -A FORWARD -j REJECT --reject-with icmp6-addr-unreachable
        COMMIT

        """;

    private const int Flows = 2048, DataSegments = 3;

    private static byte[] Tcp(string src, ushort sport, string dst, ushort dport, byte flags, uint seq, uint ack, int payload = 0)
    {
        var b = new byte[60 + payload];
        Ip6Addr.TryParse(src, out var s);
        Ip6Addr.TryParse(dst, out var d);
        BinaryPrimitives.WriteUInt32BigEndian(b, 0x6000_0000);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), (ushort)(20 + payload));
        b[6] = 6;
        b[7] = 64;
        Ip6Addr.Write(b.AsSpan(8), s);
        Ip6Addr.Write(b.AsSpan(24), d);
        var t = b.AsSpan(40);
        BinaryPrimitives.WriteUInt16BigEndian(t, sport);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], dport);
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(t[8..], ack);
        t[12] = 5 << 4;
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], 64240);
        BinaryPrimitives.WriteUInt16BigEndian(t[16..], Checksum.Compute(t, Checksum.PseudoHeaderV6(b.AsSpan(8, 16), b.AsSpan(24, 16), 6, t.Length)));
        return b;
    }

    /// <summary>One flow's packets in order, each with the device it arrives on.</summary>
    private static IEnumerable<(byte[] Ip, bool FromLan)> Flow(int i, bool outbound)
    {
        const byte Syn = (byte)TcpFlags.Syn, Ack = (byte)TcpFlags.Ack, Fin = (byte)TcpFlags.Fin, Psh = (byte)TcpFlags.Psh;
        string lan = $"2001:db8:1::{i % 250 + 2:x}", far = $"2001:db8:100::{i / 250 + 1:x}";
        ushort port = (ushort)(20000 + i);
        uint c = 1000, s = 50000;
        // Outbound: the LAN host to a server (MASQUERADE). Inbound: a client to the published port (DNAT).
        string a = outbound ? lan : far, b = outbound ? far : "2001:db8:ff::1", back = outbound ? "2001:db8:ff::1" : "2001:db8:1::2";
        ushort bport = outbound ? (ushort)443 : (ushort)8080, backPort = outbound ? (ushort)443 : (ushort)80;
        string backDst = outbound ? "2001:db8:ff::1" : far;
        bool fromA = outbound;
        yield return (Tcp(a, port, b, bport, Syn, c, 0), fromA);
        yield return (Tcp(outbound ? far : back, backPort, outbound ? backDst : far, port, Syn | Ack, s, c + 1), !fromA);
        c++; s++;
        yield return (Tcp(a, port, b, bport, Ack, c, s), fromA);
        for (int k = 0; k < DataSegments; k++)
        {
            yield return (Tcp(a, port, b, bport, Psh | Ack, c, s, 100), fromA);
            c += 100;
            yield return (Tcp(outbound ? far : back, backPort, outbound ? backDst : far, port, Ack, s, c), !fromA);
        }
        yield return (Tcp(a, port, b, bport, Fin | Ack, c, s), fromA);
        yield return (Tcp(outbound ? far : back, backPort, outbound ? backDst : far, port, Fin | Ack, s, c + 1), !fromA);
        yield return (Tcp(a, port, b, bport, Ack, c + 1, s + 1), fromA);
    }

    public static int Run(BenchArgs args)
    {
        var frames = new List<(byte[] Ip, bool FromLan)>();
        for (int i = 0; i < Flows; i++) frames.AddRange(Flow(i, outbound: i % 2 == 0));
        var t = IptablesSaveParser.Parse(Rules, "v6-fw", NetfilterTables.CreateIpv6());
        t.Host6 = new SimpleHost6().Add("lan0", "2001:db8:1::1/64").Add("wan0", "2001:db8:ff::1/64");
        t.ConntrackEnabled = true;
        var scratch = new byte[2048];
        long now = 0, accepted = 0, packets = 0;
        var all = frames.ToArray();

        long Pass()
        {
            long ok = 0;
            foreach (var (ip, fromLan) in all)
            {
                ip.CopyTo(scratch, 0);
                var pkt = scratch.AsSpan(0, ip.Length);
                if (!PacketContext.FromIpv6(pkt, pkt.Length, out var ctx, out _)) continue;
                now += 1000;
                ctx.TimestampNs = now;
                ctx.InInterface = fromLan ? "lan0" : "wan0";
                if (t.Hook(HookPoint.PreRouting, ref ctx, pkt) == Verdict.Drop) continue;
                ctx.OutInterface = fromLan ? "wan0" : "lan0";
                if (t.Hook(HookPoint.Forward, ref ctx, pkt) == Verdict.Drop) continue;
                if (t.Hook(HookPoint.PostRouting, ref ctx, pkt) == Verdict.Accept) ok++;
            }
            t.Conntrack6.Quiesce();
            // The TIME_WAIT entries of this pass expire before the next reopens them (121 s of replay clock).
            now += 121_000_000_000L;
            return ok;
        }

        double seconds = Math.Min(args.Seconds, 3);
        for (int i = 0; i < 3; i++) Pass();
        var sw = Stopwatch.StartNew();
        long alloc0 = GC.GetAllocatedBytesForCurrentThread();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            accepted += Pass();
            packets += all.Length;
        }
        double pps = packets / sw.Elapsed.TotalSeconds;
        double bytesPerPacket = (double)(GC.GetAllocatedBytesForCurrentThread() - alloc0) / packets;
        Console.WriteLine($"softnet v6-fw {pps / 1e6,7:F3} Mpps/core  accepted {(double)accepted / packets:P1}  allocated {bytesPerPacket:F2} B/packet  ({Flows} TCP flows: half LAN out through MASQUERADE, half in through DNAT, {all.Length} packets a pass)");
        if (args.Json is not null)
        {
            using var f = File.Create(args.Json);
            using var w = new Utf8JsonWriter(f, new JsonWriterOptions { Indented = true });
            w.WriteStartObject();
            w.WriteNumber("softnet_pps_per_core", Math.Round(pps));
            w.WriteNumber("accepted", (double)accepted / packets);
            w.WriteNumber("allocated_bytes_per_packet", bytesPerPacket);
            w.WriteNumber("frames_per_pass", all.Length);
            w.WriteEndObject();
        }
        return 0;
    }
}
