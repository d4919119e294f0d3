namespace Softnet.Capture;

/// <summary>LINKTYPE_* values from the tcpdump link-layer header registry (as stored in pcap/pcapng).</summary>
public enum LinkType : uint
{
    Null = 0,
    Ethernet = 1,
    Raw = 101,
    LinuxSll = 113,
    Ipv4 = 228,
    Ipv6 = 229,
    LinuxSll2 = 276,
}
