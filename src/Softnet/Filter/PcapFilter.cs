using Softnet.Capture;

namespace Softnet.Filter;

/// <summary>
/// A compiled tcpdump filter expression: pcap_compile(optimize=0) of libpcap 1.10 for Ethernet, Linux cooked
/// (SLL, SLL2) and raw IP captures, run by <see cref="ClassicBpf"/>. A frame matches when the program returns a
/// non-zero snap length, as pcap_offline_filter decides for tcpdump -r.
/// </summary>
public sealed class PcapFilter
{
    /// <summary>libpcap's default snapshot length (MAXIMUM_SNAPLEN), what tcpdump's programs return for a match.</summary>
    public const uint DefaultSnaplen = 262144;

    private readonly BpfInsn[] _program;

    private PcapFilter(string expression, Dlt dlt, BpfInsn[] program)
    {
        Expression = expression;
        Dlt = dlt;
        _program = program;
    }

    public string Expression { get; }

    public Dlt Dlt { get; }

    public ReadOnlySpan<BpfInsn> Program => _program;

    /// <summary>
    /// Compiles <paramref name="expression"/> for a link type. <paramref name="netmask"/> is the capture's IPv4
    /// netmask for "ip broadcast" (tcpdump -r passes 0; null means unknown, which libpcap refuses for it).
    /// Throws <see cref="FilterException"/> where libpcap reports an error and
    /// <see cref="FilterNotSupportedException"/> for the parts of the language this compiler leaves out.
    /// </summary>
    public static PcapFilter Compile(string expression, Dlt dlt, uint snaplen = DefaultSnaplen, uint? netmask = 0)
    {
        FNode? ast = FilterParser.Parse(expression);
        var gen = new FilterCodeGen(dlt, snaplen, netmask);
        return new PcapFilter(expression, dlt, gen.Compile(ast));
    }

    public static PcapFilter Compile(string expression, LinkType linkType, uint snaplen = DefaultSnaplen, uint? netmask = 0) =>
        Compile(expression, ToDlt(linkType), snaplen, netmask);

    /// <summary>The DLT libpcap maps a capture file's LINKTYPE to (LINKTYPE_RAW 101 is DLT_RAW 12 on Linux).</summary>
    public static Dlt ToDlt(LinkType linkType) => linkType switch
    {
        LinkType.Ethernet => Dlt.En10Mb,
        LinkType.Raw => Dlt.Raw,
        LinkType.LinuxSll => Dlt.LinuxSll,
        LinkType.LinuxSll2 => Dlt.LinuxSll2,
        LinkType.Ipv4 => Dlt.Ipv4,
        LinkType.Ipv6 => Dlt.Ipv6,
        _ => throw new FilterNotSupportedException($"link type {(uint)linkType} is not supported by this filter compiler", -1),
    };

    /// <summary>Runs the program over one frame (its captured bytes and its length on the wire). No allocation.</summary>
    public uint Run(ReadOnlySpan<byte> frame, int wireLength) => ClassicBpf.Run(_program, frame, wireLength);

    public bool Matches(ReadOnlySpan<byte> frame, int wireLength) => ClassicBpf.Run(_program, frame, wireLength) != 0;

    /// <summary>tcpdump -d.</summary>
    public string Image() => BpfImage.Image(_program);

    /// <summary>tcpdump -dd.</summary>
    public string DumpC() => BpfImage.DumpC(_program);

    /// <summary>tcpdump -ddd.</summary>
    public string DumpDecimal() => BpfImage.DumpDecimal(_program);
}
