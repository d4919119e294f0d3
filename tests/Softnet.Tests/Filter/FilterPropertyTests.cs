using System.Buffers.Binary;
using CsCheck;
using Softnet.Filter;
using Xunit;

namespace Softnet.Tests.Filter;

/// <summary>
/// Random expressions from a small grammar over random Ethernet frames: the compiled program's verdict equals a
/// direct reading of the frame (frames long enough that no load falls off the end, where a BPF program rejects
/// outright), equivalent expressions agree, and no input of any length makes the run throw.
/// </summary>
public class FilterPropertyTests
{
    private static readonly uint[] Addrs = [0x0a000001, 0x0a000002, 0xc0a80101];
    private static readonly ushort[] Ports = [53, 80, 443];

    /// <summary>An expression with its meaning over a frame.</summary>
    private sealed record Expr(string Text, Func<Frame, bool> Eval);

    /// <summary>The fields of a generated frame, and its bytes.</summary>
    private sealed record Frame(byte[] Bytes, ushort EtherType, uint Src, uint Dst, byte Proto, bool Fragment,
        ushort Sport, ushort Dport, bool Ip6Frag, int Ihl)
    {
        public bool Ip => EtherType == 0x0800;
        public bool Ip6 => EtherType == 0x86dd;
        public bool Arp => EtherType == 0x0806;
        // libpcap's "ip6 proto N": the next header, or the header behind one fragment header.
        public bool HasProto(byte p) => (Ip && Proto == p) || (Ip6 && Proto == p);
        public bool PortsVisible(byte p) => Ip ? Proto == p && !Fragment : Ip6 && Proto == p && !Ip6Frag;
    }

    private static Frame MakeFrame(Random r)
    {
        int kind = r.Next(4);
        ushort et = kind switch { 0 or 1 => 0x0800, 2 => 0x86dd, _ => 0x0806 };
        uint src = Addrs[r.Next(Addrs.Length)], dst = Addrs[r.Next(Addrs.Length)];
        byte proto = new byte[] { 6, 17, 1, 132, 58 }[r.Next(5)];
        bool frag = r.Next(5) == 0;
        bool ip6frag = et == 0x86dd && r.Next(4) == 0;
        ushort sport = Ports[r.Next(Ports.Length)], dport = Ports[r.Next(Ports.Length)];
        int ihl = 20 + 4 * r.Next(3);
        var f = new byte[14 + 40 + 8 + 40 + r.Next(60)];
        r.NextBytes(f.AsSpan(0, 12));
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), et);
        var l3 = f.AsSpan(14);
        if (et == 0x0800)
        {
            l3[0] = (byte)(0x40 | ihl / 4);
            BinaryPrimitives.WriteUInt16BigEndian(l3[6..], (ushort)(frag ? 0x0010 : 0x4000));
            l3[9] = proto;
            BinaryPrimitives.WriteUInt32BigEndian(l3[12..], src);
            BinaryPrimitives.WriteUInt32BigEndian(l3[16..], dst);
            BinaryPrimitives.WriteUInt16BigEndian(l3[ihl..], sport);
            BinaryPrimitives.WriteUInt16BigEndian(l3[(ihl + 2)..], dport);
        }
        else if (et == 0x86dd)
        {
            l3[0] = 0x60;
            l3[6] = ip6frag ? (byte)44 : proto;
            if (ip6frag) l3[40] = proto;
            BinaryPrimitives.WriteUInt32BigEndian(l3[20..], src);
            BinaryPrimitives.WriteUInt32BigEndian(l3[36..], dst);
            // libpcap reads IPv6 ports right after the fixed header and only when the next header is the transport.
            if (!ip6frag)
            {
                BinaryPrimitives.WriteUInt16BigEndian(l3[40..], sport);
                BinaryPrimitives.WriteUInt16BigEndian(l3[42..], dport);
            }
        }
        else
        {
            BinaryPrimitives.WriteUInt32BigEndian(l3[14..], src);
            BinaryPrimitives.WriteUInt32BigEndian(l3[24..], dst);
        }
        return new Frame(f, et, src, dst, proto, frag, sport, dport, ip6frag, ihl);
    }

    private static string Dotted(uint a) => $"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}";

    private static Expr Atom(Random r)
    {
        uint a = Addrs[r.Next(Addrs.Length)];
        ushort p = Ports[r.Next(Ports.Length)];
        int n = 60 + r.Next(120);
        byte[] protos = [6, 17, 132];
        switch (r.Next(14))
        {
            case 0: return new("tcp", f => f.HasProto(6) || (f.Ip6 && f.Ip6Frag && f.Proto == 6));
            case 1: return new("udp", f => f.HasProto(17) || (f.Ip6 && f.Ip6Frag && f.Proto == 17));
            case 2: return new("icmp", f => f.Ip && f.Proto == 1);
            case 3: return new("ip6", f => f.Ip6);
            case 4: return new("arp", f => f.Arp);
            case 5: return new($"host {Dotted(a)}", f => (f.Ip || f.Arp) && (f.Src == a || f.Dst == a));
            case 6: return new($"src host {Dotted(a)}", f => (f.Ip || f.Arp) && f.Src == a);
            case 7: return new($"ip dst host {Dotted(a)}", f => f.Ip && f.Dst == a);
            case 8: return new($"port {p}", f => protos.Any(f.PortsVisible) && (f.Sport == p || f.Dport == p));
            case 9: return new($"tcp dst port {p}", f => f.PortsVisible(6) && f.Dport == p);
            case 10: return new($"udp src port {p}", f => f.PortsVisible(17) && f.Sport == p);
            case 11: return new($"len > {n}", f => f.Bytes.Length > n);
            case 12: return new($"len <= {n}", f => f.Bytes.Length <= n);
            default:
                return new($"tcp[2:2] = {p}", f => f.Ip && f.Proto == 6 && !f.Fragment && f.Dport == p);
        }
    }

    private static Expr Build(Random r, int depth)
    {
        if (depth == 0 || r.Next(3) == 0) return Atom(r);
        switch (r.Next(3))
        {
            case 0:
                {
                    var x = Build(r, depth - 1);
                    return new($"not ({x.Text})", f => !x.Eval(f));
                }
            case 1:
                {
                    Expr a = Build(r, depth - 1), b = Build(r, depth - 1);
                    return new($"({a.Text}) and ({b.Text})", f => a.Eval(f) && b.Eval(f));
                }
            default:
                {
                    Expr a = Build(r, depth - 1), b = Build(r, depth - 1);
                    return new($"({a.Text}) or ({b.Text})", f => a.Eval(f) || b.Eval(f));
                }
        }
    }

    [Fact]
    public void Verdicts_equal_a_direct_reading_of_the_frame()
    {
        Gen.Int.Sample(seed =>
        {
            var r = new Random(seed);
            var e = Build(r, 3);
            var filter = PcapFilter.Compile(e.Text, Dlt.En10Mb);
            for (int i = 0; i < 20; i++)
            {
                var f = MakeFrame(r);
                bool want = e.Eval(f);
                if (filter.Matches(f.Bytes, f.Bytes.Length) != want)
                    throw new Xunit.Sdk.XunitException($"'{e.Text}' on {Convert.ToHexString(f.Bytes)}: expected {want}");
            }
        }, iter: 300);
    }

    [Fact]
    public void De_morgan_and_commuted_forms_agree_on_whole_frames()
    {
        Gen.Int.Sample(seed =>
        {
            var r = new Random(seed);
            Expr a = Build(r, 2), b = Build(r, 2);
            var and = PcapFilter.Compile($"({a.Text}) and ({b.Text})", Dlt.En10Mb);
            var demorgan = PcapFilter.Compile($"not (not ({a.Text}) or not ({b.Text}))", Dlt.En10Mb);
            var commuted = PcapFilter.Compile($"({b.Text}) && ({a.Text})", Dlt.En10Mb);
            for (int i = 0; i < 20; i++)
            {
                var f = MakeFrame(r);
                bool v = and.Matches(f.Bytes, f.Bytes.Length);
                Assert.Equal(v, demorgan.Matches(f.Bytes, f.Bytes.Length));
                Assert.Equal(v, commuted.Matches(f.Bytes, f.Bytes.Length));
            }
        }, iter: 200);
    }

    [Fact]
    public void Any_bytes_of_any_length_run_without_throwing()
    {
        string[] exprs =
        [
            "tcp port 80 or udp portrange 1-1024", "vlan and vlan 10 and ip6 host ::1", "ip[ip[0] & 0xf] = 1",
            "tcp[((tcp[12] & 0xf0) >> 2):4] = 0x47455420", "len % 3 = len / 7", "mpls 5 and ip", "pppoes and ip",
        ];
        var filters = exprs.Select(x => PcapFilter.Compile(x, Dlt.En10Mb)).ToArray();
        Gen.Int[0, 200].Select(Gen.Int).Sample((len, seed) =>
        {
            var bytes = new byte[len];
            new Random(seed).NextBytes(bytes);
            foreach (var f in filters) f.Run(bytes, len + seed % 3);
        }, iter: 500);
    }

    [Fact]
    public void Generated_text_parses_the_same_with_spacing_and_spelling_changes()
    {
        Gen.Int.Sample(seed =>
        {
            var e = Build(new Random(seed), 3);
            string alt = e.Text.Replace(" and ", " && ", StringComparison.Ordinal).Replace(" or ", "||", StringComparison.Ordinal)
                .Replace("not ", "! ", StringComparison.Ordinal);
            Assert.Equal(PcapFilter.Compile(e.Text, Dlt.En10Mb).Image(), PcapFilter.Compile(alt, Dlt.En10Mb).Image());
        }, iter: 200);
    }
}
