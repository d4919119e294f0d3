using System.Buffers.Binary;
using CsCheck;
using Softnet.Netfilter;
using Xunit;
using static Softnet.Tests.Netfilter.Ipv6.PacketBuilder6;

namespace Softnet.Tests.Netfilter.Ipv6;

/// <summary>NAT66 on random flows: every rewritten packet keeps a valid transport checksum (incremental updates over
/// the 128-bit pseudo-header addresses and the ports or echo id), and the replies come back to the original ends.</summary>
public class Nat66PropertyTests
{
    private const string Rules = """
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -d 2001:db8:ff::1/128 -i wan0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [2001:db8:1::10-2001:db8:1::1f]:80
        -A PREROUTING -d 2001:db8:ff::1/128 -i wan0 -p udp -m udp --dport 8053 -j DNAT --to-destination [2001:db8:1::53]:53
        -A POSTROUTING -s 2001:db8:1::/64 -o wan0 -p udp -j SNAT --to-source [2001:db8:ff::1-2001:db8:ff::3]:20000-20100
        -A POSTROUTING -s 2001:db8:1::/64 -o wan0 -j MASQUERADE
        COMMIT

        """;

    private static Verdict Forward(NetfilterTables t, byte[] pkt, string inIf, string outIf, long time)
    {
        var ctx = Ctx(pkt, time, inIf);
        if (t.Hook(HookPoint.PreRouting, ref ctx, pkt) == Verdict.Drop) return Verdict.Drop;
        ctx.OutInterface = outIf;
        if (t.Hook(HookPoint.Forward, ref ctx, pkt) == Verdict.Drop) return Verdict.Drop;
        return t.Hook(HookPoint.PostRouting, ref ctx, pkt);
    }

    private static byte[] Reply(byte[] p)
    {
        // The far end answers: addresses and ports (or echo type) swapped, checksum recomputed by the builder.
        string src = Src(p), dst = Dst(p);
        return p[6] switch
        {
            6 => Tcp(dst, DstPort(p), src, SrcPort(p), 0x12, seq: 9000, ack: BinaryPrimitives.ReadUInt32BigEndian(p.AsSpan(44)) + 1, payload: 3),
            17 => Udp(dst, DstPort(p), src, SrcPort(p), payload: 5),
            _ => Icmp6(dst, src, 129, 0, BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(44)), BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(46)), p.AsSpan(48)),
        };
    }

    [Fact]
    public void Random_flows_keep_valid_checksums_and_replies_find_their_way_back()
    {
        var gen = Gen.Select(Gen.Int[0, 3], Gen.Int[1, 250], Gen.UShort[1, 65535], Gen.Int[0, 300], Gen.UShort);
        gen.Sample((kind, host, port, payload, id) =>
        {
            var t = IptablesSaveParser.Parse(Rules, "r", NetfilterTables.CreateIpv6());
            t.Host6 = new SimpleHost6().Add("lan0", "2001:db8:1::1/64").Add("wan0", "2001:db8:ff::1/64");
            t.ConntrackEnabled = true;
            string lanHost = $"2001:db8:1::{host + 0x100:x}", outside = $"2001:db8:77::{host:x}";
            byte[] pkt;
            string inIf, outIf;
            switch (kind)
            {
                case 0: pkt = Tcp(lanHost, port, outside, 443, 0x02, seq: 5, payload: payload); inIf = "lan0"; outIf = "wan0"; break;
                case 1: pkt = Udp(lanHost, port, outside, 53, payload); inIf = "lan0"; outIf = "wan0"; break;
                case 2: pkt = Icmp6(lanHost, outside, 128, 0, id, 1, new byte[payload]); inIf = "lan0"; outIf = "wan0"; break;
                default: pkt = Tcp(outside, port, "2001:db8:ff::1", 8080, 0x02, seq: 5, payload: payload); inIf = "wan0"; outIf = "lan0"; break;
            }
            string origSrc = Src(pkt);
            ushort origSport = SrcPort(pkt);
            Assert.Equal(Verdict.Accept, Forward(t, pkt, inIf, outIf, 0));
            AssertChecksumValid(pkt);
            if (kind == 3)
            {
                Assert.InRange(A(Dst(pkt)), A("2001:db8:1::10"), A("2001:db8:1::1f"));
                Assert.Equal(80, DstPort(pkt));
            }
            else
            {
                Assert.StartsWith("2001:db8:ff::", Src(pkt));
                if (kind == 1) Assert.InRange(SrcPort(pkt), (ushort)20000, (ushort)20100);
            }
            var reply = Reply(pkt);
            Assert.Equal(Verdict.Accept, Forward(t, reply, outIf, inIf, 1));
            AssertChecksumValid(reply);
            Assert.Equal(origSrc, Dst(reply));
            if (kind == 2) Assert.Equal(id, BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(44)));
            else Assert.Equal(origSport, DstPort(reply));
        }, iter: 500);
    }
}
