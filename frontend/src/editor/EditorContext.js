import { createContext, useContext } from 'react';

// What every node on the canvas reads besides its own data: the palette, the strings, the names
// behind keys, the problems, the live counts.
export const EditorContext = createContext(null);

export function useEditor() {
  return useContext(EditorContext);
}
