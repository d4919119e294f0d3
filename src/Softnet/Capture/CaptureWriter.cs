namespace Softnet.Capture;

/// <summary>Creates a capture writer whose format follows the file name.</summary>
public static class CaptureWriter
{
    /// <summary>pcap (nanosecond) for *.pcap and *.cap, pcapng (nanosecond) for anything else.</summary>
    public static ICaptureWriter Create(string path, LinkType linkType = LinkType.Ethernet)
    {
        string ext = Path.GetExtension(path);
        return ext.Equals(".pcap", StringComparison.OrdinalIgnoreCase) || ext.Equals(".cap", StringComparison.OrdinalIgnoreCase)
            ? PcapWriter.Create(path, linkType)
            : PcapngWriter.Create(path, linkType);
    }
}
