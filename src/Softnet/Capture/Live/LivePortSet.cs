using static Softnet.Capture.Live.LiveSyscalls;

namespace Softnet.Capture.Live;

/// <summary>
/// Waits on several live ports at once: one poll(2) over every port's <see cref="ILivePort.ReadinessFds"/>, so a frame on
/// any port wakes the loop at once (waiting on each port in turn would leave the others a timeout behind). A port whose
/// descriptors fired then gets <see cref="ILivePort.WaitReceive"/>(0) for its own bookkeeping (socket errors, link
/// events). The descriptor array is built once.
/// </summary>
public sealed unsafe class LivePortSet
{
    private const short PollIn = 0x001, PollErr = 0x008;

    private readonly IReadOnlyList<ILivePort> _ports;
    private readonly PollFd[] _fds;
    private readonly int[] _owner;

    public LivePortSet(IReadOnlyList<ILivePort> ports)
    {
        _ports = ports;
        var fds = new List<PollFd>();
        var owner = new List<int>();
        for (int p = 0; p < ports.Count; p++)
            foreach (int fd in ports[p].ReadinessFds)
            {
                fds.Add(new PollFd { Fd = fd, Events = PollIn | PollErr });
                owner.Add(p);
            }
        _fds = [.. fds];
        _owner = [.. owner];
    }

    /// <summary>Blocks until some port has something to receive or <paramref name="timeoutMs"/> passes; true when a
    /// port has frames.</summary>
    public bool Wait(int timeoutMs)
    {
        if (_ports.Count == 1) return _ports[0].WaitReceive(timeoutMs);
        int rc;
        fixed (PollFd* p = _fds)
        {
            for (int i = 0; i < _fds.Length; i++) p[i].Revents = 0;
            rc = poll(p, (nuint)_fds.Length, timeoutMs);
        }
        if (rc <= 0) return false;
        bool any = false;
        int last = -1;
        for (int i = 0; i < _fds.Length; i++)
        {
            if (_fds[i].Revents == 0 || _owner[i] == last) continue;
            last = _owner[i];
            any |= _ports[last].WaitReceive(0);
        }
        return any;
    }
}
