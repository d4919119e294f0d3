using Softnet.Filter;
using Xunit;

namespace Softnet.Tests.Filter;

/// <summary>
/// The compiler against programs tcpdump 4.99.3 / libpcap 1.10.3 printed (`tcpdump -r FILE -O -d EXPR`), the
/// grammar's precedence and qualifier inheritance, the -dd/-ddd formats, and libpcap's error messages.
/// </summary>
public class FilterCompilerTests
{
    // tcpdump -r raw.pcap -O -d 'udp[8:4] = 0x12345678 and len > 100'
    private const string UdpIndexRaw = """
(000) ldb      [0]
(001) and      #0xf0
(002) jeq      #0x40            jt 3	jf 41
(003) ldb      [0]
(004) and      #0xf0
(005) jeq      #0x40            jt 6	jf 8
(006) ldb      [9]
(007) jeq      #0x11            jt 17	jf 8
(008) ldb      [0]
(009) and      #0xf0
(010) jeq      #0x60            jt 11	jf 41
(011) ldb      [6]
(012) jeq      #0x11            jt 17	jf 13
(013) ldb      [6]
(014) jeq      #0x2c            jt 15	jf 41
(015) ldb      [40]
(016) jeq      #0x11            jt 17	jf 41
(017) ldh      [6]
(018) jset     #0x1fff          jt 41	jf 19
(019) ld       #0x8
(020) st       M[0]
(021) ldxb     4*([0]&0xf)
(022) ld       M[0]
(023) add      x
(024) tax      
(025) ld       [x + 0]
(026) st       M[1]
(027) ld       #0x12345678
(028) st       M[2]
(029) ldx      M[2]
(030) ld       M[1]
(031) sub      x
(032) jeq      #0x0             jt 33	jf 41
(033) ld       #pktlen
(034) st       M[2]
(035) ld       #0x64
(036) st       M[3]
(037) ldx      M[3]
(038) ld       M[2]
(039) jgt      x                jt 40	jf 41
(040) ret      #262144
(041) ret      #0

""";

    // tcpdump -r ethernet.pcap -O -d 'vlan 10 and host 1.2.3.4': everything after "vlan" is 4 bytes further in.
    private const string VlanHostEthernet = """
(000) ldh      [12]
(001) jeq      #0x8100          jt 6	jf 2
(002) ldh      [12]
(003) jeq      #0x88a8          jt 6	jf 4
(004) ldh      [12]
(005) jeq      #0x9100          jt 6	jf 34
(006) ldh      [14]
(007) and      #0xfff
(008) jeq      #0xa             jt 9	jf 34
(009) ldh      [16]
(010) jeq      #0x800           jt 11	jf 13
(011) ld       [30]
(012) jeq      #0x1020304       jt 33	jf 13
(013) ldh      [16]
(014) jeq      #0x800           jt 15	jf 17
(015) ld       [34]
(016) jeq      #0x1020304       jt 33	jf 17
(017) ldh      [16]
(018) jeq      #0x806           jt 19	jf 21
(019) ld       [32]
(020) jeq      #0x1020304       jt 33	jf 21
(021) ldh      [16]
(022) jeq      #0x806           jt 23	jf 25
(023) ld       [42]
(024) jeq      #0x1020304       jt 33	jf 25
(025) ldh      [16]
(026) jeq      #0x8035          jt 27	jf 29
(027) ld       [32]
(028) jeq      #0x1020304       jt 33	jf 29
(029) ldh      [16]
(030) jeq      #0x8035          jt 31	jf 34
(031) ld       [42]
(032) jeq      #0x1020304       jt 33	jf 34
(033) ret      #262144
(034) ret      #0

""";

    [Fact]
    public void Programs_equal_libpcap_110_unoptimised_output()
    {
        Assert.Equal(UdpIndexRaw, PcapFilter.Compile("udp[8:4] = 0x12345678 and len > 100", Dlt.Raw).Image());
        Assert.Equal(VlanHostEthernet, PcapFilter.Compile("vlan 10 and host 1.2.3.4", Dlt.En10Mb).Image());
    }

    [Fact]
    public void Empty_expression_accepts_everything_with_the_snap_length()
    {
        var f = PcapFilter.Compile("", Dlt.En10Mb);
        Assert.Equal("(000) ret      #262144\n", f.Image());
        Assert.True(f.Matches(new byte[1], 1));
        Assert.Equal(1500u, PcapFilter.Compile("  ", Dlt.Raw, 1500).Run(new byte[20], 20));
    }

    [Fact]
    public void Dump_formats_are_bpf_dumps()
    {
        var f = PcapFilter.Compile("ip", Dlt.En10Mb);
        Assert.Equal("4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n", f.DumpDecimal());
        Assert.Equal("{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 1, 0x00000800 },\n{ 0x6, 0, 0, 0x00040000 },\n{ 0x6, 0, 0, 0x00000000 },\n", f.DumpC());
    }

    [Theory]
    // A bare id takes the qualifiers of the term before it.
    [InlineData("host 1.2.3.4 or 5.6.7.8", "host 1.2.3.4 or host 5.6.7.8")]
    [InlineData("tcp port 80 or 443", "tcp port 80 or tcp port 443")]
    [InlineData("src net 10.0.0.0/8 and not 10.1.0.0/16", "src net 10.0.0.0/8 and not src net 10.1.0.0/16")]
    [InlineData("host 1.2.3.4 and (5.6.7.8 or 9.9.9.9)", "host 1.2.3.4 and (host 5.6.7.8 or host 9.9.9.9)")]
    // and/or have equal precedence and group left; not binds tighter.
    [InlineData("tcp or udp and port 53", "(tcp or udp) and port 53")]
    [InlineData("not tcp or udp", "(not tcp) or udp")]
    [InlineData("tcp && !udp || icmp", "(tcp and not udp) or icmp")]
    // Arithmetic: * over +, + over shifts, shifts over &, & over |.
    [InlineData("1 + 2 * 3 = 7", "1 + (2 * 3) = 7")]
    [InlineData("1 | 2 & 3 = 3", "1 | (2 & 3) = 3")]
    [InlineData("1 << 2 + 1 = 8", "1 << (2 + 1) = 8")]
    [InlineData("len - 14 - 20 > 0", "(len - 14) - 20 > 0")]
    // '%' and '^' have no precedence in grammar.y: bison shifts, so they take the rest of the arithmetic.
    [InlineData("len % 4 + 1 = 1", "len % (4 + 1) = 1")]
    [InlineData("len * 3 ^ 1 = 0", "len * (3 ^ 1) = 0")]
    // Spellings.
    [InlineData("tcp[tcpflags] & tcp-syn != 0", "tcp[13] & 2 != 0")]
    [InlineData("icmp[icmptype] == icmp-echo", "icmp[0] = 8")]
    [InlineData("ether host 00:11:22:33:44:55", "ether host 0011.2233.4455")]
    [InlineData("length >= 0x40", "len >= 64")]
    [InlineData("ip proto \\tcp", "ip proto 6")]
    [InlineData("ether proto \\ip6", "ether proto 0x86dd")]
    [InlineData("port domain", "port 53")]
    public void Equivalent_spellings_compile_alike(string a, string b)
    {
        foreach (var dlt in new[] { Dlt.En10Mb, Dlt.LinuxSll, Dlt.LinuxSll2, Dlt.Raw })
        {
            if (dlt != Dlt.En10Mb && a.StartsWith("ether host", StringComparison.Ordinal)) continue;
            Assert.Equal(PcapFilter.Compile(b, dlt).Image(), PcapFilter.Compile(a, dlt).Image());
        }
    }

    [Theory]
    [InlineData("tcp and 80", "syntax error in filter expression")]
    [InlineData("host", "can't parse filter expression: syntax error")]
    [InlineData("tcp or", "can't parse filter expression: syntax error")]
    [InlineData("(tcp", "can't parse filter expression: syntax error")]
    [InlineData("port 70000", "illegal port number 70000 > 65535")]
    [InlineData("host 300.1.1.1", "invalid IPv4 address '300.1.1.1'")]
    [InlineData("net 10.0.0.1/8", "non-network bits set in \"10.0.0.1/8\"")]
    [InlineData("net 10.0.0.0/33", "mask length must be <= 32")]
    [InlineData("ip6 host 1.2.3.4", "'ip6' modifier applied to ip host")]
    [InlineData("tcp host 1.2.3.4", "'tcp' modifier applied to host")]
    [InlineData("tcp[0:3] = 1", "data size must be 1, 2, or 4")]
    [InlineData("vlan 5000", "VLAN tag 5000 greater than maximum 4095")]
    [InlineData("1 / 0 = 1", "division by zero")]
    [InlineData("1 << 32 = 1", "shift by more than 31 bits")]
    [InlineData("ip proto foo", "unknown ip proto 'foo'")]
    [InlineData("09 = 1", "number 09 contains non-octal digit")]
    [InlineData("4294967296 = 1", "number 4294967296 overflows 32 bits")]
    [InlineData("port 80 or 1.2.3.4", "'port' modifier applied to ip host")]
    [InlineData("host fe80::/16", "Mask syntax for networks only")]
    public void Errors_are_libpcaps(string expr, string reason)
    {
        var e = Assert.Throws<FilterException>(() => PcapFilter.Compile(expr, Dlt.En10Mb));
        Assert.Equal(reason, e.Reason);
        Assert.InRange(e.Position, 0, expr.Length);
    }

    [Fact]
    public void Syntax_errors_say_where()
    {
        var e = Assert.Throws<FilterException>(() => PcapFilter.Compile("tcp port 80 and and udp", Dlt.En10Mb));
        Assert.Equal(16, e.Position);
        Assert.Contains("(at character 16)", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("vlan", Dlt.LinuxSll, "no VLAN support for Linux cooked v1")]
    [InlineData("ether broadcast", Dlt.Raw, "not a broadcast link")]
    [InlineData("ether host 0:1:2:3:4:5", Dlt.LinuxSll2, "ethernet addresses supported only on ethernet/FDDI/token ring/802.11/ATM LANE/Fibre Channel")]
    [InlineData("inbound", Dlt.En10Mb, "inbound/outbound not supported on Ethernet when reading savefiles")]
    public void Link_type_errors(string expr, Dlt dlt, string reason)
    {
        Assert.Equal(reason, Assert.Throws<FilterException>(() => PcapFilter.Compile(expr, dlt)).Reason);
    }

    [Theory]
    [InlineData("host example.com")]
    [InlineData("gateway router1")]
    [InlineData("lane")]
    [InlineData("geneve")]
    public void Unimplemented_parts_are_named(string expr)
    {
        Assert.Throws<FilterNotSupportedException>(() => PcapFilter.Compile(expr, Dlt.En10Mb));
    }

    [Fact]
    public void Ip_broadcast_needs_a_netmask()
    {
        Assert.Throws<FilterException>(() => PcapFilter.Compile("ip broadcast", Dlt.En10Mb, netmask: null));
        Assert.NotEmpty(PcapFilter.Compile("ip broadcast", Dlt.En10Mb, netmask: 0xffffff00).Program.ToArray());
    }
}
